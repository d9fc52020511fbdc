// Export of stored readings as CSV, JSON or JSON Lines, page by page (keyset paging on time and seq), so
// memory stays flat however many rows there are. Used by GET /api/export and `edge-agent export`.
import type { LogRecord } from '../../log/index.js';
import { stringify } from 'csv-stringify/sync';
import type { Asker, Position, StoreQuery } from '../../consume/store/types.js';
import { fieldOf } from '../../consume/store/where.js';

export const EXPORT_FORMATS = ['csv', 'json', 'jsonl'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export interface ExportOptions {
  /** What to export (topic filter, time range, field conditions, order). */
  query: Omit<StoreQuery, 'afterSeq' | 'after' | 'limit'>;
  format: ExportFormat;
  /** Payload fields (dotted paths) to keep; all when absent. */
  fields?: string[];
  /** Readings read per page (1,000: what a page holds in both threads' heaps while it waits for a slow reader). */
  pageRows?: number;
  /** Called after each page with the rows so far. */
  progress?: (rows: number) => void;
  /** Whom the export is for: its pages take that asker's turns in the store. */
  asker?: Asker;
}

export interface Reader {
  query(q: StoreQuery, asker?: Asker): Promise<LogRecord[]>;
}

export const contentTypes: Record<ExportFormat, string> = {
  csv: 'text/csv; charset=utf-8',
  json: 'application/json; charset=utf-8',
  jsonl: 'application/x-ndjson; charset=utf-8',
};

const BASE_COLUMNS = ['seq', 'receivedAt', 'topic', 'clientId', 'schema', 'deviceTime', 'clockSynced', 'clockCorrectionMs'];
/** Without a field list, CSV columns are the payload fields of the first page; later fields go here as JSON. */
const EXTRA = '_extra';

function project(payload: unknown, fields: string[] | undefined): unknown {
  if (!fields) return payload;
  return Object.fromEntries(fields.map((f) => [f, fieldOf(payload, f) ?? null]));
}

/** Booleans as true/false (csv-stringify writes false as an empty cell). */
const toCsv = (rows: unknown[][]) => stringify(rows, { cast: { boolean: (b) => String(b) } });

const cell = (v: unknown) => (v === undefined || v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : v);

class CsvRows {
  private columns: string[] | undefined;
  private headWritten = false;

  constructor(private readonly fields: string[] | undefined) {}

  /** The columns, from the first page (whole, though it is written in pieces). */
  learn(page: LogRecord[]): void {
    this.columns ??= this.fields ?? [...new Set(page.flatMap((r) => (isObject(r.payload) ? Object.keys(r.payload) : ['payload'])))];
  }

  page(records: LogRecord[]): string {
    this.learn(records);
    const columns = this.columns!;
    const head = this.headWritten ? '' : toCsv([[...BASE_COLUMNS, ...columns, ...(this.fields ? [] : [EXTRA])]]);
    this.headWritten = true;
    const rows = records.map((r) => {
      const base = [
        r.seq,
        new Date(r.receivedAt).toISOString(),
        r.topic,
        r.clientId,
        r.schema ?? '',
        r.deviceTime === undefined ? '' : new Date(r.deviceTime).toISOString(),
        r.clockSynced,
        r.clockCorrectionMs ?? '',
      ];
      if (this.fields) return [...base, ...columns.map((f) => cell(fieldOf(r.payload, f)))];
      const payload = isObject(r.payload) ? r.payload : { payload: r.payload };
      const extra = Object.fromEntries(Object.entries(payload).filter(([k]) => !columns.includes(k)));
      return [...base, ...columns.map((c) => cell(payload[c])), Object.keys(extra).length ? JSON.stringify(extra) : ''];
    });
    return head + toCsv(rows);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * Readings turned into text at a time: a piece of typical readings stays well under V8's large-object
 * size (128 kB), so it dies young in a scavenge; a page's text as one string (212 kB for 1,000) went
 * to the old generation's large objects and piled up there between full collections.
 */
const PIECE_ROWS = 200;

/** The export as text pieces, a few per page; pull them as the output drains. */
export async function* exportText(reader: Reader, opts: ExportOptions): AsyncGenerator<string> {
  const pageRows = opts.pageRows ?? 1000;
  const csv = new CsvRows(opts.fields);
  let after: Position | undefined;
  let rows = 0;
  if (opts.format === 'json') yield '[';
  for (;;) {
    const page = await pageText(reader, { ...opts, pageRows }, csv, after, rows);
    if (!page) break;
    // Only the page's text waits for a slow reader: its readings, several times the size, die young.
    for (const piece of page.pieces) yield piece;
    rows += page.rows;
    after = page.last;
    opts.progress?.(rows);
    if (page.rows < pageRows) break;
  }
  if (opts.format === 'json') yield rows ? '\n]\n' : ']\n';
  else if (opts.format === 'csv' && rows === 0) yield toCsv([[...BASE_COLUMNS, ...(opts.fields ?? [])]]);
}

/** One page of readings after `after`, as text pieces; null when none is left. `before`: rows already written. */
async function pageText(
  reader: Reader,
  opts: ExportOptions & { pageRows: number },
  csv: CsvRows,
  after: Position | undefined,
  before: number,
): Promise<{ pieces: string[]; rows: number; last: Position } | null> {
  const page = await reader.query({ ...opts.query, limit: opts.pageRows, after }, opts.asker);
  if (!page.length) return null;
  if (opts.format === 'csv') csv.learn(page);
  const pieces: string[] = [];
  for (let i = 0; i < page.length; i += PIECE_ROWS) {
    const piece = page.slice(i, i + PIECE_ROWS);
    if (opts.format === 'csv') pieces.push(csv.page(piece));
    else {
      const lines = piece.map((r) => JSON.stringify({ ...r, payload: project(r.payload, opts.fields) }));
      pieces.push(opts.format === 'jsonl' ? `${lines.join('\n')}\n` : `${before + i ? ',' : ''}\n${lines.join(',\n')}`);
    }
  }
  return { pieces, rows: page.length, last: { at: page.at(-1)!.receivedAt, seq: page.at(-1)!.seq } };
}
