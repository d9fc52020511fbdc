// `edge-agent export`: the export of GET /api/export, from the data directory (also while the agent
// runs: the store is opened read-only), to a file or stdout, with a progress bar on a terminal.
import { createWriteStream, existsSync } from 'node:fs';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { SingleBar } from 'cli-progress';
import { openStoreReader, type StoreBackend } from '../../consume/store/index.js';
import { parseFilter, parseTime } from '../../consume/store/where.js';
import { filterProblem } from '../../../mqtt-topic/topic.js';
import { EXPORT_FORMATS, exportText, type ExportFormat } from './index.js';

export interface ExportCommandOptions {
  format: string;
  topic: string;
  from?: string;
  to?: string;
  where: string[];
  fields?: string;
  order: string;
  gzip?: boolean;
  out?: string;
}

/** A problem with the command line: named, exit 2. */
export class ExportUsageError extends Error {}

function time(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const t = parseTime(value);
  if (!Number.isFinite(t))
    throw new ExportUsageError(`--${name}: ${JSON.stringify(value)} is neither an ISO 8601 time nor ms since the epoch`);
  return t;
}

/** The store to read: its backend, path and key (encryption at rest). */
export interface StoreLocation {
  backend: StoreBackend | 'none';
  path: string;
  key?: Buffer;
}

export async function exportCommand(location: StoreLocation, o: ExportCommandOptions): Promise<number> {
  if (!(EXPORT_FORMATS as readonly string[]).includes(o.format))
    throw new ExportUsageError(`--format: one of ${EXPORT_FORMATS.join(', ')}`);
  if (o.order !== 'asc' && o.order !== 'desc') throw new ExportUsageError('--order: asc or desc');
  const problem = filterProblem(o.topic);
  if (problem) throw new ExportUsageError(`--topic: not a valid MQTT topic filter: ${problem}`);
  let where;
  try {
    where = o.where.map(parseFilter);
  } catch (err) {
    throw new ExportUsageError(`--where: ${(err as Error).message}`);
  }
  const { backend, path, key } = location;
  if (backend === 'none') throw new ExportUsageError('store.backend is none: there is no local store to export');
  if (!existsSync(path)) throw new ExportUsageError(`no store at ${path}`);
  const store = await openStoreReader(backend, path, key);
  const bar = process.stderr.isTTY
    ? new SingleBar({ format: 'exporting {value} rows  {rate} rows/s', stream: process.stderr, noTTYOutput: false })
    : undefined;
  const started = Date.now();
  bar?.start(0, 0, { rate: 0 });
  let rows = 0;
  try {
    const text = Readable.from(
      exportText(store, {
        query: { topic: o.topic, from: time(o.from, 'from'), to: time(o.to, 'to'), where, order: o.order },
        format: o.format as ExportFormat,
        fields: o.fields
          ?.split(',')
          .map((f) => f.trim())
          .filter(Boolean),
        progress: (n) => {
          rows = n;
          bar?.update(n, { rate: Math.round(n / Math.max(0.001, (Date.now() - started) / 1000)) });
        },
      }),
    );
    const out: Writable = o.out ? createWriteStream(o.out, { mode: 0o600 }) : process.stdout;
    await (o.gzip ? pipeline(text, createGzip(), out) : pipeline(text, out));
  } finally {
    bar?.stop();
    await store.close();
  }
  return rows;
}
