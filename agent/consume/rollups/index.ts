// The rollups stage: a consumer of the durable log that keeps, per series, numeric field and bucket,
// count, min, max, sum, mean, standard deviation and last, updated as readings arrive (never by
// rescanning them). It runs beside the local store, whatever its backend, in a worker thread.
import { type ChunkBatch, ChunkText, TextBatch, encodeRecord, type RefusedReading } from '../../log/format.js';
import { join } from 'node:path';
import type { EngineLog } from '../engine.js';
import { durationMs } from '../../config/keys.js';
import { DbWorker, RestartingWorker } from '../db/db-worker.js';
import type { PruneStep } from '../store/types.js';
import type { RollupConfig } from './config.js';
import type { EmittedBucket, RollupQuery, RollupRow } from './db.js';
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
  /** Bytes the database holds; of the series on these topics, their share by rows. */
  size(topics?: { topics: string[]; except?: string[] }): Promise<number>;
  /** Highest seq folded in. */
  appliedSeq(): number;
  /** Numeric fields past rollups.maxFields, not rolled up (since start). */
  ignoredFields(): number;
  writtenBytes(): number;
  /**
   * Closed buckets as a log the rollup sinks consume (seq: the bucket's revision), each a record on
   * the bucket's topic, received at the bucket's start; undefined when no sink takes rollups.
   */
  readonly feed: RollupFeed | undefined;
  close(): Promise<void>;
}

/** What the forwarder of a rollup sink reads, in the shape of the durable log. */
export interface RollupFeed extends EngineLog {
  readTexts(consumer: string, afterSeq: number, max: number, peek?: boolean): Promise<TextBatch | null>;
  consumers(): string[];
  dropConsumer(name: string): Promise<void>;
  /** Close the buckets that ended by `now` (call when the rollups are caught up with the log). */
  tick(now: number): Promise<void>;
}

/** Which sinks take rollups, of which widths, and where a bucket a sink refuses goes. */
export interface RollupSinks {
  agentId: string;
  /** Consumer name -> bucket widths (config strings) it takes. */
  consumers: Record<string, string[]>;
  deadLetter(refused: RefusedReading): Promise<void>;
}

/** A closed bucket as a record: topic, tags and per field count, min, max, sum, mean, stddev, last. */
function bucketLine(b: EmittedBucket, bucket: string): string {
  const payload: Record<string, unknown> = { bucket, start: b.start, end: b.start + b.width, ...b.tags };
  for (const [field, f] of Object.entries(b.fields)) {
    for (const [k, v] of Object.entries(f)) if (v !== null) payload[`${field}.${k}`] = v;
  }
  return encodeRecord(b.revision, {
    topic: b.topic,
    receivedAt: b.start,
    clockSynced: true,
    clientId: 'rollups',
    schema: `rollup/${bucket}`,
    qos: 1,
    payloadJson: JSON.stringify(payload),
  });
}

export const defaultRollupPath = (dataDir: string) => join(dataDir, 'rollups.db');

/** `key`: encrypt the database (SQLCipher format) with it; `sinks`: the sinks that take rollups. */
export async function openRollups(config: RollupConfig, path: string, key?: Buffer, sinks?: RollupSinks): Promise<Rollups> {
  const widths = config.buckets.map(durationMs);
  const nameOf = new Map(config.buckets.map((b) => [durationMs(b), b]));
  const taken = [...new Set(Object.values(sinks?.consumers ?? {}).flat())].map(durationMs);
  const data: RollupWorkerData = {
    path,
    widths,
    series: config.series,
    maxFields: config.maxFields,
    key,
    emitWidths: taken,
    closeAfterMs: config.closeAfterMs,
  };
  let applied = 0;
  let ignored = 0;
  let ignoredBefore = 0;
  let revision = 0;
  const worker = await RestartingWorker.open<Request>(
    () => new DbWorker('rollups', data),
    (ready) => {
      applied = Math.max(applied, ready);
      ignoredBefore += ignored; // a new worker counts from 0
      ignored = 0;
    },
  );
  const waiters = new Set<() => void>();
  const advanced = (to: number) => {
    if (to <= revision) return;
    revision = to;
    for (const wake of waiters) wake();
    waiters.clear();
  };
  const names = Object.keys(sinks?.consumers ?? {});
  const cursors = new Map<string, number>();
  if (sinks) {
    const known = (await worker.call({ op: 'cursors', names })) as { cursors: Record<string, number>; revision: number };
    for (const [n, c] of Object.entries(known.cursors)) cursors.set(n, c);
    advanced(known.revision);
  }
  const cursorOf = (name: string) => {
    const c = cursors.get(name);
    if (c === undefined) throw new Error(`unknown rollup consumer ${name}`);
    return c;
  };

  const feed: RollupFeed | undefined = sinks && {
    registerConsumer: async (name) => void cursorOf(name),
    cursor: cursorOf,
    async commit(name, seq) {
      if (seq <= cursorOf(name)) return;
      cursors.set(name, seq);
      await worker.call({ op: 'commit', name, revision: seq, consumers: names });
    },
    get lastSeq() {
      return revision;
    },
    committedAt: () => 0, // a closed bucket waits for nothing more: send it now
    waitFor(after, ms) {
      if (revision > after) return Promise.resolve();
      return new Promise((resolve) => {
        const timer = setTimeout(done, ms);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        waiters.add(done);
      });
    },
    appendDeadLetter: (refused) => sinks.deadLetter(refused),
    async readTexts(name, after, max) {
      cursorOf(name);
      const buckets = (await worker.call({ op: 'emitted', after, max })) as EmittedBucket[];
      if (!buckets.length) return null;
      // Every revision is a line (the seqs must run on); widths this sink does not take are filtered by their schema.
      const lines = buckets.map((b) => bucketLine(b, nameOf.get(b.width) ?? `${b.width}ms`));
      return new TextBatch(
        `${sinks.agentId}/rollups`,
        [ChunkText.of(lines, buckets[0].revision)],
        buckets[0].revision,
        buckets.at(-1)!.revision,
      );
    },
    consumers: () => names,
    dropConsumer: async () => {},
    async tick(now) {
      advanced((await worker.call({ op: 'tick', now })) as number);
    },
  };

  return {
    widths,
    feed,
    async write(batch) {
      const chunks = batch.chunks.map((c) => new Uint8Array(c));
      const result = (await worker.call(
        { op: 'write', chunks, firstSeq: batch.firstSeq, lastSeq: batch.lastSeq, key: batch.key, clock: batch.clock },
        chunks.map((c) => c.buffer as ArrayBuffer),
      )) as { applied: number; ignoredFields: number; revision: number };
      applied = Math.max(applied, result.applied);
      ignored = result.ignoredFields;
      advanced(result.revision);
    },
    query: async (query) => (await worker.call({ op: 'query', query })) as RollupRow[],
    prune: async (rule, limit) => (await worker.call({ op: 'prune', rule, limit })) as PruneStep,
    size: async (topics) => (await worker.call({ op: 'size', topics })) as number,
    appliedSeq: () => applied,
    ignoredFields: () => ignoredBefore + ignored,
    writtenBytes: () => worker.written,
    close: () => worker.close(),
  };
}
