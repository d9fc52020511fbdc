// The rollups stage: a consumer of the durable log that keeps, per series, numeric field and bucket,
// count, min, max, sum, mean, standard deviation and last, updated as readings arrive (never by
// rescanning them). It runs beside the local store, whatever its backend, in a worker thread.
import { join } from 'node:path';
import type { ChunkBatch } from '../buffer/chunk-batch.js';
import { durationMs } from '../config/keys.js';
import { DbWorker, RestartingWorker, workerScript } from '../db-worker.js';
import type { PruneStep } from '../store/types.js';
import type { RollupConfig } from './config.js';
import type { RollupQuery, RollupRow } from './db.js';
import type { Request, RollupPruneRule, RollupWorkerData } from './worker.js';

export type { RollupConfig } from './config.js';
export type { RollupQuery, RollupRow } from './db.js';
export type { RollupPruneRule } from './worker.js';

/** The rollups' name as a consumer of the log. */
export const ROLLUP_CONSUMER = 'rollups';

export interface Rollups {
  /** Bucket widths kept, ms. */
  readonly widths: number[];
  /** Fold a batch of consecutive readings in; ones already in are skipped. */
  write(batch: ChunkBatch): Promise<void>;
  query(q: RollupQuery): Promise<RollupRow[]>;
  /** Delete up to `limit` buckets the rule covers, oldest first, then give space back: call until `done`. */
  prune(rule: RollupPruneRule, limit: number): Promise<PruneStep>;
  /** Bytes the database holds. */
  size(): Promise<number>;
  /** Highest seq folded in. */
  appliedSeq(): number;
  /** Numeric fields past rollups.maxFields, not rolled up (since start). */
  ignoredFields(): number;
  writtenBytes(): number;
  close(): Promise<void>;
}

export const defaultRollupPath = (dataDir: string) => join(dataDir, 'rollups.db');

/** `key`: encrypt the database (SQLCipher format) with it. */
export async function openRollups(config: RollupConfig, path: string, key?: Buffer): Promise<Rollups> {
  const widths = config.buckets.map(durationMs);
  const data: RollupWorkerData = { path, widths, series: config.series, maxFields: config.maxFields, key };
  let applied = 0;
  let ignored = 0;
  let ignoredBefore = 0;
  const worker = await RestartingWorker.open<Request>(
    () => new DbWorker(workerScript('rollup/worker.js'), data),
    (ready) => {
      applied = Math.max(applied, ready);
      ignoredBefore += ignored; // a new worker counts from 0
      ignored = 0;
    },
  );
  return {
    widths,
    async write(batch) {
      const chunks = batch.chunks.map((c) => new Uint8Array(c));
      const result = (await worker.call({ op: 'write', chunks, firstSeq: batch.firstSeq, lastSeq: batch.lastSeq, key: batch.key }, chunks.map((c) => c.buffer as ArrayBuffer))) as { applied: number; ignoredFields: number };
      applied = Math.max(applied, result.applied);
      ignored = result.ignoredFields;
    },
    query: async (query) => (await worker.call({ op: 'query', query })) as RollupRow[],
    prune: async (rule, limit) => (await worker.call({ op: 'prune', rule, limit })) as PruneStep,
    size: async () => (await worker.call({ op: 'size' })) as number,
    appliedSeq: () => applied,
    ignoredFields: () => ignoredBefore + ignored,
    writtenBytes: () => worker.written,
    close: () => worker.close(),
  };
}
