// The rollups in the database thread (db-host.ts): one RollupDb, answering the requests of index.ts.
// The bare matcher: this thread should not load Aedes and LevelDB.
import { batchLines } from '../../log/format.js';
import { coveredBy, firstMatching } from '../../../mqtt-topic/topic.js';
import type { ClockOffsets } from '../../ingest/clock-correction.js';
import type { DbService } from '../db/db-thread.js';
import { RollupDb, type RollupQuery } from './db.js';
import type { SeriesRule } from './extract.js';

/** Which buckets a prune step covers: topics by pattern (less `except`), bucket widths, ended before `before`. */
export interface RollupPruneRule {
  topics: string[];
  except?: string[];
  widths: number[];
  before: number;
}

export type Request =
  | { op: 'write'; chunks: Uint8Array[]; firstSeq: number; lastSeq: number; key?: Buffer; clock?: ClockOffsets }
  | { op: 'query'; query: RollupQuery }
  | { op: 'prune'; rule: RollupPruneRule; limit: number }
  | { op: 'size'; topics?: { topics: string[]; except?: string[] } }
  | { op: 'tick'; now: number }
  | { op: 'emitted'; after: number; max: number }
  | { op: 'commit'; name: string; revision: number; consumers: string[] }
  | { op: 'cursors'; names: string[] }
  | { op: 'close' };

export interface RollupWorkerData {
  path: string;
  widths: number[];
  series: SeriesRule[];
  maxFields: number;
  key?: Uint8Array;
  emitWidths: number[];
  closeAfterMs: number;
}

export function openRollupService({
  path,
  widths,
  series,
  maxFields,
  key,
  emitWidths,
  closeAfterMs,
}: RollupWorkerData): DbService<Request> {
  const db = new RollupDb(path, widths, series, maxFields, key && Buffer.from(key), emitWidths, closeAfterMs);
  return { ready: db.appliedSeq(), handle: (req) => handle(db, req) };
}

function handle(db: RollupDb, req: Request): unknown {
  switch (req.op) {
    case 'write':
      return {
        applied: db.write(batchLines(req.chunks, req.firstSeq, req.lastSeq, req.key && Buffer.from(req.key)), req.clock),
        ignoredFields: db.ignoredFields,
        revision: db.lastRevision(),
      };
    case 'query':
      return firstMatching(db.query(req.query), req.query.topic, req.query.limit ?? 1000);
    case 'prune': {
      const { widths, before } = req.rule;
      const started = performance.now();
      const step = db.pruneStep({ topicIds: db.topicIds(coveredBy(req.rule)), widths, before }, req.limit);
      return { ...step, ms: performance.now() - started };
    }
    case 'size':
      return req.topics ? db.seriesBytes(db.topicIds(coveredBy(req.topics))) : db.size();
    case 'tick':
      return db.closeBuckets(req.now);
    case 'emitted':
      return db.emitted(req.after, req.max);
    case 'commit':
      return db.commit(req.name, req.revision, req.consumers);
    case 'cursors':
      db.dropCursorsExcept(req.names);
      return { cursors: Object.fromEntries(req.names.map((n) => [n, db.cursor(n)])), revision: db.lastRevision() };
    case 'close':
      return db.close();
  }
}
