// The store in the database thread (db-host.ts): one SqliteDb, answering the requests of sqlite.ts.
// The bare matcher: this thread should not load Aedes and LevelDB.
import { batchLines, type LogRecord } from '../../log/format.js';
import { coveredBy, topicMatches } from '../../../mqtt-topic/topic.js';
import type { ClockOffsets } from '../../ingest/clock-correction.js';
import type { DbService } from '../db/db-thread.js';
import type { Folded, FoldQuery, Position, PruneRule, Removal, StoreQuery, TextForm, TopicCover } from './types.js';
import { foldReading } from './fold.js';
import { matchesWhere } from './where.js';
import { SqliteDb } from './sqlite-db.js';
import { renderText } from './text.js';

export type Request =
  | { op: 'fold'; query: FoldQuery; after?: Position; left: number; sliceMs: number }
  | { op: 'write'; agentId: string; chunks: Uint8Array[]; firstSeq: number; lastSeq: number; key?: Buffer; clock?: ClockOffsets }
  | { op: 'query'; query: StoreQuery; sliceMs: number; text?: { form: TextForm; before: number } }
  | { op: 'prune'; rule: PruneRule; limit: number }
  | { op: 'remove'; removal: Removal; limit: number }
  | { op: 'size'; topics?: TopicCover }
  | { op: 'close' };

export interface StoreWorkerData {
  path: string;
  key?: Uint8Array;
  readonly?: boolean;
}

export function openStoreService({ path, key, readonly }: StoreWorkerData): DbService<Request> {
  const db = new SqliteDb(path, key && Buffer.from(key), readonly);
  return { ready: db.lastSeq(), handle: (req) => handle(db, req) };
}

function handle(db: SqliteDb, req: Request): unknown {
  switch (req.op) {
    case 'write':
      return db.write(req.agentId, batchLines(req.chunks, req.firstSeq, req.lastSeq, req.key && Buffer.from(req.key)), req.clock);
    case 'query':
      return req.text ? textSlice(db, req.query, req.sliceMs, req.text.form, req.text.before) : querySlice(db, req.query, req.sliceMs);
    case 'fold':
      return foldSlice(db, req.query, req.after, req.left, req.sliceMs);
    case 'prune': {
      const { before, throughSeq = Number.MAX_SAFE_INTEGER } = req.rule;
      const started = performance.now();
      const step = db.pruneStep(db.topicIds(coveredBy(req.rule)), before, throughSeq, req.limit);
      return { ...step, ms: performance.now() - started };
    }
    case 'remove': {
      const { topic, from = 0, to = Number.MAX_SAFE_INTEGER } = req.removal;
      const started = performance.now();
      const step = db.removeStep(db.topicIds(coveredBy({ topics: [topic] })), from, to, req.limit);
      return { ...step, ms: performance.now() - started };
    }
    case 'size':
      return req.topics ? db.topicBytes(db.topicIds(coveredBy(req.topics))) : db.size();
    case 'close':
      return db.close();
  }
}

/** Rows looked at between two looks at the clock. */
const ROWS_PER_CLOCK_LOOK = 256;

/**
 * The readings of a query, found within about `sliceMs`; when time runs out first, those found and
 * the position to go on after (the caller asks again, and a write waiting here goes first). At most
 * `maxScan` readings are looked at.
 */
function querySlice(db: SqliteDb, q: StoreQuery, sliceMs: number): { records: LogRecord[]; looked: number; resume?: Position } {
  const started = performance.now();
  const limit = q.limit ?? 1000;
  const records: LogRecord[] = [];
  if (limit <= 0) return { records, looked: 0 };
  let looked = 0;
  for (const r of db.query(q, coveredBy({ topics: [q.topic ?? '#'] }))) {
    if ((q.topic === undefined || topicMatches(q.topic, r.topic)) && matchesWhere(r, q.where)) {
      records.push(r);
      if (records.length >= limit) break;
    }
    looked++;
    if (looked === q.maxScan || (looked % ROWS_PER_CLOCK_LOOK === 0 && performance.now() - started > sliceMs))
      return { records, looked, resume: { at: r.receivedAt, seq: r.seq } };
  }
  return { records, looked };
}

/** As querySlice, the readings rendered as text here: only the text goes to the main thread. */
function textSlice(db: SqliteDb, q: StoreQuery, sliceMs: number, form: TextForm, before: number): TextSlice {
  const { records, looked, resume } = querySlice(db, q, sliceMs);
  const last = records.at(-1);
  return {
    pieces: renderText(records, form, before),
    rows: records.length,
    ...(last ? { last: { at: last.receivedAt, seq: last.seq } } : {}),
    looked,
    ...(resume ? { resume } : {}),
  };
}

export interface TextSlice {
  pieces: string[];
  rows: number;
  /** The last reading rendered. */
  last?: Position;
  looked: number;
  resume?: Position;
}

/**
 * Up to `left` readings of the range folded, after `after`, within about `sliceMs`; when time runs
 * out first, the position to go on after; `more` when the range holds more than `left`.
 */
function foldSlice(
  db: SqliteDb,
  q: FoldQuery,
  after: Position | undefined,
  left: number,
  sliceMs: number,
): { series: Folded; looked: number; resume?: Position; more?: boolean } {
  const started = performance.now();
  const series: Folded = new Map();
  let looked = 0;
  for (const r of db.query({ topic: q.topic, from: q.from, to: q.to, after, exceptSeqs: q.exceptSeqs }, coveredBy({ topics: [q.topic] }))) {
    if (!topicMatches(q.topic, r.topic)) continue;
    if (looked === left) return { series, looked, more: true };
    foldReading(series, r, q.width, q.fields);
    looked++;
    if (looked % ROWS_PER_CLOCK_LOOK === 0 && performance.now() - started > sliceMs)
      return { series, looked, resume: { at: r.receivedAt, seq: r.seq } };
  }
  return { series, looked };
}
