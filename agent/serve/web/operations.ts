// What the REST routes and GraphQL both do with readings: a page, aggregates, deletion. Bad
// parameters throw HttpError naming them; each transport reports it its own way.
import type { DeadLetter, LogRecord } from '../../log/index.js';
import type { Histogram } from 'prom-client';
import { topicMatches } from '../../../mqtt-topic/topic.js';
import { durationMs } from '../../config/keys.js';
import { bucketStart } from '../../consume/rollups/extract.js';
import { stddev } from '../../consume/rollups/stats.js';
import type { Asker, Position } from '../../consume/store/types.js';
import type { AgentApi, ApiSource } from './api.js';
import { badParameter, HttpError } from './errors.js';
import { agentOf, listOf, range, storeOf, topicFilter, whereOf } from './routes/params.js';

export interface Operations {
  api: ApiSource;
  queryDuration: Histogram<'source'>;
  /** Most stored readings one request looks at (web.limits.scanReadings). */
  scanReadings: number;
}

export interface ReadingsQuery {
  topic: string;
  from?: string;
  to?: string;
  where?: string[];
  limit: number;
  cursor?: string;
  order: 'asc' | 'desc';
}

/**
 * `curl '...?topic=sensors/#'` sends `topic=sensors/`: the shell and curl take `#` as the start of a
 * fragment. A filter ending in `/` that matches nothing was most likely cut there: say so.
 */
const CUT_AT_HASH =
  "nothing matches a topic filter ending in '/': if it was meant to end in '#', write it %23 in a URL ('+' is %2B): curl and browsers drop everything from a bare #";

/**
 * One page. A page whose conditions match few readings ends once it looked at `scanReadings` of
 * them, with fewer than `limit` and a `next` to go on from where it stopped: no request scans
 * without bound. `asker`: whose turn it takes in the store, and whether they have gone.
 */
export async function readingsPage(
  ops: Operations,
  q: ReadingsQuery,
  asker?: Asker,
): Promise<{ readings: LogRecord[]; next: string | null; hint?: string }> {
  const page = await pageOf(ops, q, asker);
  return page.readings.length === 0 && q.topic?.endsWith('/') && !q.cursor ? { ...page, hint: CUT_AT_HASH } : page;
}

async function pageOf(
  { api, queryDuration, scanReadings }: Operations,
  q: ReadingsQuery,
  asker?: Asker,
): Promise<{ readings: LogRecord[]; next: string | null }> {
  const store = storeOf(api);
  const after = fromCursor(q.cursor, q.order);
  const query = {
    topic: topicFilter(q.topic),
    ...range(q),
    where: whereOf(q.where),
    order: q.order,
    limit: q.limit,
    after,
    maxScan: scanReadings,
  };
  const end = queryDuration.startTimer({ source: store.kind });
  const { records: readings, scannedTo } = await store.page(query, asker).finally(() => end());
  const last = readings.at(-1);
  if (scannedTo) return { readings, next: cursorOf(scannedTo, q.order) };
  return { readings, next: last && readings.length === q.limit ? cursorOf({ at: last.receivedAt, seq: last.seq }, q.order) : null };
}

export interface AggregateQuery {
  topic: string;
  bucket: string;
  from?: string;
  to?: string;
  fields?: string[];
  stats?: string[];
}

export async function aggregate({ api, queryDuration, scanReadings }: Operations, q: AggregateQuery, asker?: Asker) {
  const width = durationMs(q.bucket);
  if (width < 60_000 || width > 86_400_000) throw badParameter('bucket', `${q.bucket} is outside 1m..1d`);
  const { from, to } = range(q);
  const query = {
    topic: topicFilter(q.topic),
    from: from === undefined ? undefined : bucketStart(from, width),
    to,
    width,
    fields: listOf(q.fields),
  };
  const rollups = agentOf(api).rollups;
  const source = rollups?.widths.includes(width) ? 'rollups' : 'store';
  const end = queryDuration.startTimer({ source: source === 'rollups' ? 'rollups' : (agentOf(api).store?.kind ?? 'none') });
  const series = await (
    source === 'rollups' ? aggregateFromRollups(api, query) : aggregateFromStore(api, query, scanReadings, asker)
  ).finally(() => end());
  const wanted = new Set<StatName>((q.stats as StatName[] | undefined) ?? STATS);
  for (const s of series) {
    s.points = s.points.map((p) =>
      Object.fromEntries(Object.entries(p).filter(([k]) => k === 'start' || wanted.has(k as StatName))),
    ) as typeof s.points;
  }
  return { bucket: q.bucket, source, series: series.map((x) => ({ ...x, ...describeField(agentOf(api), x.topic, x.field) })) };
}

/** What the schema on a series' topic says of its field: its unit, and whether it only counts up. */
function describeField(agent: AgentApi, topic: string, field: string): { unit?: string; counter?: boolean } {
  const schema = agent.schemas.list().find((s) => s.topics.some((t) => topicMatches(t, topic)));
  const unit = schema?.units[field];
  return { ...(unit ? { unit } : {}), ...(schema?.counters.includes(field) ? { counter: true } : {}) };
}

export interface ReplayOutcome {
  replayed: { id: number; seq: number }[];
  refused: { id: number; reasons: DeadLetter['reasons'] }[];
  skipped: { id: number; why: string }[];
}

/** Check dead letters again against the schemas now, oldest first; those that pass are taken and leave the dead letters. */
export async function replay(agent: AgentApi, letters: DeadLetter[]): Promise<ReplayOutcome> {
  const out: ReplayOutcome = { replayed: [], refused: [], skipped: [] };
  for (const d of [...letters].sort((a, b) => a.id - b.id)) {
    if (d.truncated) out.skipped.push({ id: d.id, why: 'only the first part of its payload was kept' });
    else if (d.consumer || d.sink)
      out.skipped.push({
        id: d.id,
        why: `refused by ${d.consumer ?? d.sink} after it was accepted: taking it again would duplicate it in the other consumers`,
      });
    else {
      // At the time it first arrived, so charts and sinks place it where it belongs.
      const result = await agent.submit([
        { topic: d.topic, payload: Buffer.from(d.payload, 'base64'), qos: 1, retain: false, clientId: d.clientId, receivedAt: d.time },
      ]);
      if (result.taken) {
        await agent.deadLetters.removeDeadLetters([d.id]);
        out.replayed.push({ id: d.id, seq: result.seqs[0] });
      } else if ('unavailable' in result) throw new HttpError(503, result.unavailable);
      else out.refused.push({ id: d.id, reasons: result.refused[0].reasons });
    }
  }
  return out;
}

export async function deleteReadings({ api }: Operations, q: { topic: string; from?: string; to?: string }): Promise<number> {
  const store = storeOf(api);
  const removal = { topic: topicFilter(q.topic), ...range(q) };
  let deleted = 0;
  // In steps, so ingest's writes go on in between.
  for (let step = await store.remove(removal, 5000); ; step = await store.remove(removal, 5000)) {
    deleted += step.deleted;
    if (step.done) return deleted;
  }
}

export const STATS = ['count', 'min', 'max', 'sum', 'mean', 'stddev', 'last'] as const;
type StatName = (typeof STATS)[number];

/** Opaque to clients: where a page ended, and the order it runs in. */
const cursorOf = (p: Position, order: string) => Buffer.from(JSON.stringify({ ...p, order })).toString('base64url');
function fromCursor(cursor: string | undefined, order: string): Position | undefined {
  if (cursor === undefined) return undefined;
  try {
    const c = JSON.parse(Buffer.from(cursor, 'base64url').toString()) as { at: unknown; seq: unknown; order: unknown };
    if (Number.isSafeInteger(c.at) && Number.isSafeInteger(c.seq) && c.order === order) return { at: c.at as number, seq: c.seq as number };
  } catch {
    // falls through to the error below
  }
  throw badParameter('cursor', 'not a cursor from this query (take `next` from the previous page, same order)');
}

/** Fold the store's readings into buckets (in the store's thread): for widths the rollups do not keep. */
async function aggregateFromStore(
  api: ApiSource,
  q: { topic: string; from?: number; to?: number; width: number; fields?: string[] },
  scanReadings: number,
  asker?: Asker,
) {
  const { series, more } = await storeOf(api).fold({ ...q, maxScan: scanReadings }, asker);
  if (more) {
    throw new HttpError(
      400,
      `from, to: the range holds more than ${scanReadings} stored readings (web.limits.scanReadings): narrow it, or ask a bucket width the rollups keep (rollups.buckets)`,
      [{ parameter: 'from', message: 'narrow the range' }],
    );
  }
  return [...series.values()].map((s) => ({
    topic: s.topic,
    tags: {},
    field: s.field,
    points: [...s.points].sort(([a], [b]) => a - b).map(([start, stats]) => ({ start, ...stats, stddev: stddev(stats) })),
  }));
}

async function aggregateFromRollups(api: ApiSource, q: { topic: string; from?: number; to?: number; width: number; fields?: string[] }) {
  const rows = await agentOf(api).rollups!.query({
    topic: q.topic,
    width: q.width,
    from: q.from,
    to: q.to,
    fields: q.fields,
    limit: 1_000_000,
  });
  const series = new Map<string, { topic: string; tags: Record<string, string>; field: string; points: Record<string, unknown>[] }>();
  for (const r of rows) {
    if (!topicMatches(q.topic, r.topic)) continue;
    const key = `${r.topic}\u0000${JSON.stringify(r.tags)}\u0000${r.field}`;
    let s = series.get(key);
    if (!s) series.set(key, (s = { topic: r.topic, tags: r.tags, field: r.field, points: [] }));
    s.points.push({ start: r.start, count: r.count, min: r.min, max: r.max, sum: r.sum, mean: r.mean, stddev: r.stddev, last: r.last });
  }
  return [...series.values()];
}
