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
  const data: RollupWorkerData = {
    path,
    widths,
    series: config.series,
    maxFields: config.maxFields,
    key,
    emitWidths: [...new Set(Object.values(sinks?.consumers ?? {}).flat())].map(durationMs),
    closeAfterMs: config.closeAfterMs,
  };
  const counts = new FoldCounts();
  const worker = await RestartingWorker.open<Request>(
    () => new DbWorker('rollups', data),
    (ready) => counts.restarted(ready),
  );
  const bucketNames = new Map(config.buckets.map((b) => [durationMs(b), b]));
  const feed = sinks && (await BucketFeed.open(worker, sinks, bucketNames));
  return new WorkerRollups(widths, worker, counts, feed);
}

/** How far the rollups have folded, across worker restarts. */
class FoldCounts {
  applied = 0;
  ignored = 0;
  ignoredBefore = 0;

  restarted(ready: number): void {
    this.applied = Math.max(this.applied, ready);
    this.ignoredBefore += this.ignored; // a new worker counts from 0
    this.ignored = 0;
  }
}

/** The rollups, kept by a database worker. */
class WorkerRollups implements Rollups {
  constructor(
    readonly widths: number[],
    private readonly worker: RestartingWorker<Request>,
    private readonly counts: FoldCounts,
    readonly feed: BucketFeed | undefined,
  ) {}

  async write(batch: ChunkBatch): Promise<void> {
    const chunks = batch.chunks.map((c) => new Uint8Array(c));
    const result = (await this.worker.call(
      { op: 'write', chunks, firstSeq: batch.firstSeq, lastSeq: batch.lastSeq, key: batch.key, clock: batch.clock },
      chunks.map((c) => c.buffer as ArrayBuffer),
    )) as { applied: number; ignoredFields: number; revision: number };
    this.counts.applied = Math.max(this.counts.applied, result.applied);
    this.counts.ignored = result.ignoredFields;
    this.feed?.advanced(result.revision);
  }

  async query(query: RollupQuery): Promise<RollupRow[]> {
    return (await this.worker.call({ op: 'query', query })) as RollupRow[];
  }

  async prune(rule: RollupPruneRule, limit: number): Promise<PruneStep> {
    return (await this.worker.call({ op: 'prune', rule, limit })) as PruneStep;
  }

  async size(topics?: { topics: string[]; except?: string[] }): Promise<number> {
    return (await this.worker.call({ op: 'size', topics })) as number;
  }

  appliedSeq(): number {
    return this.counts.applied;
  }

  ignoredFields(): number {
    return this.counts.ignoredBefore + this.counts.ignored;
  }

  writtenBytes(): number {
    return this.worker.written;
  }

  close(): Promise<void> {
    return this.worker.close();
  }
}

/** Closed buckets as a log (seq: the bucket's revision) with a cursor for each rollup sink. */
class BucketFeed implements RollupFeed {
  private revision = 0;
  private readonly waiters = new Set<() => void>();
  private readonly names: string[];

  private constructor(
    private readonly worker: RestartingWorker<Request>,
    private readonly sinks: RollupSinks,
    private readonly bucketNames: Map<number, string>,
    private readonly cursors: Map<string, number>,
  ) {
    this.names = Object.keys(sinks.consumers);
  }

  static async open(worker: RestartingWorker<Request>, sinks: RollupSinks, bucketNames: Map<number, string>): Promise<BucketFeed> {
    const names = Object.keys(sinks.consumers);
    const known = (await worker.call({ op: 'cursors', names })) as { cursors: Record<string, number>; revision: number };
    const feed = new BucketFeed(worker, sinks, bucketNames, new Map(Object.entries(known.cursors)));
    feed.advanced(known.revision);
    return feed;
  }

  /** The rollups reached this revision: wake the sinks waiting for it. */
  advanced(to: number): void {
    if (to <= this.revision) return;
    this.revision = to;
    for (const wake of this.waiters) wake();
    this.waiters.clear();
  }

  get lastSeq(): number {
    return this.revision;
  }

  async registerConsumer(name: string): Promise<void> {
    this.cursor(name);
  }

  cursor(name: string): number {
    const c = this.cursors.get(name);
    if (c === undefined) throw new Error(`unknown rollup consumer ${name}`);
    return c;
  }

  async commit(name: string, seq: number): Promise<void> {
    if (seq <= this.cursor(name)) return;
    this.cursors.set(name, seq);
    await this.worker.call({ op: 'commit', name, revision: seq, consumers: this.names });
  }

  /** A closed bucket waits for nothing more: send it now. */
  committedAt(): number {
    return 0;
  }

  waitFor(after: number, ms: number): Promise<void> {
    if (this.revision > after) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const waiters = this.waiters;
      function done() {
        clearTimeout(timer);
        waiters.delete(done);
        resolve();
      }
      waiters.add(done);
    });
  }

  appendDeadLetter(refused: RefusedReading): Promise<void> {
    return this.sinks.deadLetter(refused);
  }

  async readTexts(name: string, after: number, max: number): Promise<TextBatch | null> {
    this.cursor(name);
    const buckets = (await this.worker.call({ op: 'emitted', after, max })) as EmittedBucket[];
    if (!buckets.length) return null;
    // Every revision is a line (the seqs must run on); widths this sink does not take are filtered by their schema.
    const lines = buckets.map((b) => bucketLine(b, this.bucketNames.get(b.width) ?? `${b.width}ms`));
    return new TextBatch(
      `${this.sinks.agentId}/rollups`,
      [ChunkText.of(lines, buckets[0].revision)],
      buckets[0].revision,
      buckets.at(-1)!.revision,
    );
  }

  consumers(): string[] {
    return this.names;
  }

  async dropConsumer(): Promise<void> {}

  async tick(now: number): Promise<void> {
    this.advanced((await this.worker.call({ op: 'tick', now })) as number);
  }
}
