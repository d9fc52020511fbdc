// Worker thread entry: owns one SqliteDb and answers the requests of sqlite.ts.
import { workerData } from 'node:worker_threads';
// The bare matcher: this thread should not load Aedes and LevelDB.
import { coveredBy, firstMatching } from '../../mqtt-topic/topic.js';
import { batchLines } from '../buffer/chunk-batch.js';
import type { ClockOffsets } from '../buffer/record.js';
import { serveDb } from '../db-thread.js';
import type { PruneRule, Removal, StoreQuery, TopicCover } from './types.js';
import { meeting } from './where.js';
import { SqliteDb } from './sqlite-db.js';

export type Request = { op: 'write'; agentId: string; chunks: Uint8Array[]; firstSeq: number; lastSeq: number; key?: Buffer; clock?: ClockOffsets } | { op: 'query'; query: StoreQuery } | { op: 'prune'; rule: PruneRule; limit: number } | { op: 'remove'; removal: Removal; limit: number } | { op: 'size'; topics?: TopicCover } | { op: 'close' };

let db: SqliteDb;
serveDb<Request>(() => {
  const { path, key, readonly } = workerData as { path: string; key?: Uint8Array; readonly?: boolean };
  db = new SqliteDb(path, key && Buffer.from(key), readonly);
  return db.lastSeq();
}, handle);

function handle(req: Request): unknown {
  switch (req.op) {
    case 'write':
      return db.write(req.agentId, batchLines(req.chunks, req.firstSeq, req.lastSeq, req.key && Buffer.from(req.key)), req.clock);
    case 'query':
      return firstMatching(meeting(db.query(req.query, coveredBy({ topics: [req.query.topic ?? '#'] })), req.query.where), req.query.topic, req.query.limit ?? 1000);
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
