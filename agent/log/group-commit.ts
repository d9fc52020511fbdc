// Writing the log: readings (and dead letters) wait a short window and go to disk together, one
// sync for them all. A commit goes, synced, into a small journal overwritten in place, so a sync
// sends only the pages it touched to the card; its chunks go into LevelDB only when the journal's
// ring is full (a checkpoint), and only those no consumer has passed by then: most are read by the
// store and the sinks within seconds and never written a second time (LevelDB writes each value
// twice, its log and then a table). A failed commit is retried until it succeeds, the senders held
// meanwhile, and nothing is acknowledged before.
import type { NewRecord } from '../ingest/reading.js';
import { Backoff } from '../lib/backoff.js';
import { describeDiskError } from '../lib/faults.js';
import type { Logger } from '../lib/logger.js';
import type { ChunkInfo } from './chunk-list.js';
import { encodeChunk } from './chunk.js';
import { encodeFrame, Journal } from './journal.js';
import { chunkKey, text, utf8, type Op } from './keys.js';
import type { LevelStore } from './level-store.js';
import { encodeRecord } from './record.js';

export interface GroupCommitOptions {
  dir: string;
  /** Longest a reading waits for its commit: the readings of this window share one sync (a PUBACK latency budget). */
  maxDelayMs: number;
  /** Commits of readings never promised durability (QoS 0 only) are synced at least this often. */
  syncIntervalMs?: number;
  /** Waiting readings past this many bytes (before compression) commit without waiting for the window (default 6 kB). */
  commitBytes?: number;
  /** Most readings in one commit (and one chunk). */
  maxRecords: number;
  encryptionKey?: Buffer;
  /** After each commit, per batch of readings in it: how long its first reading waited, seconds (metrics). */
  onCommitted?: (seconds: number) => void;
  /** Bytes of readings and dead letters each commit took (before compression): disk pressure reads free space after every few MB. */
  onWritten?: (bytes: number) => void;
  logger: Logger;
}

/** Whether the log takes readings, and since when; `refusing` while commits fail (disk full, I/O). */
export interface LogHealth {
  state: 'ok' | `refusing: ${string}`;
  since: string;
  lastError?: { message: string; at: string };
}

/** What the rest of the log hears of a commit. */
export interface CommitHooks {
  /** The chunks are on disk (with their values as written): list them, keep them in memory. */
  committed(chunks: ChunkInfo[], values: Buffer[]): void;
  /** Everything of the commit is done: wake the readers. */
  durable(): void;
}

const isChunkPut = (op: Op): op is Op & { type: 'put' } => op.type === 'put' && op.key.startsWith('c!');

interface Batch {
  lines: string[];
  /** Holds a reading promised durability (QoS 1, a dead letter): its commit is synced. */
  sync: boolean;
  /** Lines heard by taps once committed (QoS 1); QoS 0 ones, which may wait for a commit a while, are heard as they come. */
  tapOnCommit: string[];
  firstSeq: number;
  /** When its first reading came (performance.now()): the longest any of them waited for the commit. */
  openedAt: number;
  deadLetters: Op[];
  done: Promise<void>;
  resolve(): void;
  reject(err: Error): void;
}

/** The write-ahead journal's size: a ring of commits, LevelDB synced each time round. */
const JOURNAL_BYTES = 4 * 1024 * 1024;
/**
 * Readings waiting beyond this many bytes (before compression) commit at once, by default: at high
 * rates a PUBACK then waits about as long as 6 kB take to come (30 ms at 1,000 readings/s), not the
 * whole window, leaving the rest of a 50 ms budget to a busy Pi. The cost is syncs: each sends the
 * card at least a 4 kB page (buffer.commitBytes; 8 kB sent a quarter fewer at 1,000 readings/s).
 */
const COMMIT_BYTES = 6 * 1024;
/**
 * QoS 0 readings alone wait for syncIntervalMs or this many bytes: nobody waits on them, and every
 * write of a file costs ext4's journal a commit for its times (at 10 readings/s, 8 kB came every 4 s).
 */
const QOS0_COMMIT_BYTES = 256 * 1024;
const DEFAULT_SYNC_INTERVAL_MS = 20_000;
/**
 * A commit larger than this skips the journal: LevelDB's own sync then costs less than writing the
 * commit a second time (its file grows, so ext4 commits its metadata: about 12 kB, once).
 */
const JOURNAL_FRAME_MAX = 16 * 1024;

export class GroupCommit {
  private health: LogHealth = { state: 'ok', since: new Date().toISOString() };
  /** Listeners to readings as they are committed (live streams); none costs nothing. */
  private readonly taps = new Set<(lines: string[]) => void>();
  /** Batches waiting for the next commit; each becomes one chunk of at most maxRecords readings. */
  private pending: Batch[] = [];
  private pendingSize = 0;
  private writing: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** When the timer fires (performance.now()). */
  private timerAt = 0;
  /** A commit due now, started once the current turn of the event loop ends. */
  private flushing: NodeJS.Immediate | undefined;
  private nextSeq = 1;
  private durableSeq = 0;
  /** The seq of the newest reading written to LevelDB or the journal (a commit's, before it is durable). */
  private writtenSeq = 0;
  /** Set while disk pressure allows nothing but deletions: commits wait. */
  private writesHeld: string | undefined;
  /** close() was called: a commit that keeps failing gives up. */
  private closing = false;
  private closed = false;
  /** The number of the last commit (journal frame); LevelDB keeps it as m!journal. */
  private commitNumber = 0;
  /** Syncs commits that were not (QoS 0 only) at the latest syncIntervalMs after the first. */
  private syncTimer: NodeJS.Timeout | null = null;
  /** Commits since the last checkpoint are in LevelDB only, unsynced: the next sync is LevelDB's. */
  private unjournaled = false;
  /**
   * Chunks of journaled commits not yet in LevelDB, by firstSeq: written at the next checkpoint
   * unless a consumer passed them first (forget). At most the journal's size.
   */
  private readonly unfolded = new Map<number, Uint8Array>();
  commits = 0;

  private constructor(
    private readonly opts: GroupCommitOptions,
    private readonly store: LevelStore,
    private readonly journal: Journal,
    private readonly hooks: CommitHooks,
  ) {}

  /**
   * Open the journal. What its commits hold that LevelDB lacks goes into it: the chunks of commits
   * since the last checkpoint (after a stop without one: a crash), and whole commits LevelDB lost (a
   * power cut took its unsynced writes); then LevelDB is synced, and the journal starts over.
   */
  static async open(opts: GroupCommitOptions, store: LevelStore, hooks: CommitHooks): Promise<GroupCommit> {
    const { journal, frames } = await Journal.open(`${opts.dir}/edge-journal`, JOURNAL_BYTES);
    try {
      const whole = Number(text((await store.get('m!journal')) ?? utf8(0)));
      const folded = Number(text((await store.get('m!folded')) ?? utf8(whole))); // a log from before: every commit whole
      let number = whole;
      let chunks = 0;
      for (const frame of frames.filter((f) => f.number > Math.min(whole, folded))) {
        const ops = frame.number > whole ? frame.ops : frame.ops.filter(isChunkPut);
        chunks += ops.filter(isChunkPut).length;
        await store.change(ops);
        number = Math.max(number, frame.number);
      }
      const lost = frames.filter((f) => f.number > whole && f.ops.some((op) => op.key.startsWith('d!')));
      if (lost.length)
        opts.logger.warn({ commits: lost.length }, 'log: dead letters LevelDB had lost (a power cut?) written again from the journal');
      if (chunks)
        opts.logger.info({ chunks, last: number }, 'log: chunks of commits since the last checkpoint moved from the journal into LevelDB');
      const writer = new GroupCommit(opts, store, journal, hooks);
      writer.commitNumber = number;
      await writer.checkpoint();
      if (frames.length) await journal.clear(); // in LevelDB on disk now; and the read left large folios cached
      return writer;
    } catch (err) {
      await journal.close();
      throw err;
    }
  }

  /** Seqs go on after the newest the log holds (found at start-up). */
  startAfter(lastSeq: number): void {
    this.nextSeq = lastSeq + 1;
    this.durableSeq = lastSeq;
    this.writtenSeq = lastSeq;
  }

  /** Append a reading; `durable` settles when its chunk is on disk (fsync). */
  append(record: NewRecord): { seq: number; durable: Promise<void> } {
    const seq = this.nextSeq++;
    const batch = this.openBatch(seq);
    const line = encodeRecord(seq, record);
    batch.lines.push(line);
    if (record.qos > 0 && !batch.sync) {
      batch.sync = true;
      batch.openedAt = performance.now(); // its window starts with its first durable reading
    }
    if (record.qos > 0) batch.tapOnCommit.push(line);
    else for (const tap of this.taps) tap([line]);
    this.pendingSize += line.length;
    this.schedule(batch);
    return { seq, durable: batch.done };
  }

  /** A dead letter's writes in the next commit, acknowledged once on disk. */
  commitDeadLetter(build: () => { ops: Op[]; bytes: number }): Promise<void> {
    const batch = this.openBatch(this.nextSeq);
    const { ops, bytes } = build();
    batch.deadLetters.push(...ops);
    if (!batch.sync) {
      batch.sync = true;
      batch.openedAt = performance.now();
    }
    this.pendingSize += bytes;
    this.schedule(batch);
    return batch.done;
  }

  /** Hear readings (record lines, see encodeRecord): QoS 1 once on disk, QoS 0 as they come; returns the way to stop. */
  tap(listener: (lines: string[]) => void): () => void {
    this.taps.add(listener);
    return () => this.taps.delete(listener);
  }

  /** Bytes accepted but not yet durable: what backpressure decisions look at. */
  get pendingBytes(): number {
    return this.pendingSize;
  }

  /** The seq of the newest durable reading. */
  get lastSeq(): number {
    return this.durableSeq;
  }

  /** False while commits fail: ingest holds every sender until they succeed again. */
  get accepting(): boolean {
    return this.health.state === 'ok';
  }

  get isClosed(): boolean {
    return this.closed;
  }

  status(): LogHealth {
    return { ...this.health };
  }

  /** While a reason is set (disk pressure at its reserve), commits wait: nothing but deletions is written. */
  holdWrites(reason: string | undefined): void {
    this.writesHeld = reason;
  }

  /** Commit now what is pending (not waiting for the window); resolves once it is on disk. */
  async commitNow(): Promise<void> {
    const last = this.pending.at(-1)?.done ?? this.writing;
    this.flush();
    await last;
    await this.syncNow();
  }

  /** Commit what is pending; then nothing more is taken. */
  async close(): Promise<void> {
    this.closing = true;
    this.flush();
    while (this.writing) {
      await this.writing;
      this.flush();
    }
    this.closed = true;
  }

  /** Close the journal, nothing synced (the log failed to open). */
  abandon(): Promise<void> {
    return this.journal.close();
  }

  /**
   * A checkpoint (the chunks no consumer passed into LevelDB, so the next start has nothing to take
   * from the journal), and close the journal (after close()). On a full disk the checkpoint can fail:
   * the journal, synced, keeps what it holds for the next start.
   */
  async end(): Promise<void> {
    if (this.syncTimer) clearTimeout(this.syncTimer);
    this.syncTimer = null;
    try {
      await this.checkpoint();
    } catch (err) {
      this.opts.logger.warn(
        { err: (err as Error).message },
        'log: the checkpoint at close failed; the journal keeps its commits for the next start',
      );
      await this.journal.sync().catch((e: Error) => this.opts.logger.warn({ err: e.message }, 'log: syncing the journal at close failed'));
    }
    await this.journal.close();
  }

  /** A chunk of a commit since the last checkpoint, not yet in LevelDB; undefined otherwise. */
  unfoldedChunk(firstSeq: number): Uint8Array | undefined {
    return this.unfolded.get(firstSeq);
  }

  /** A chunk every consumer passed (or otherwise gone): a checkpoint no longer writes it. */
  forget(firstSeq: number): void {
    this.unfolded.delete(firstSeq);
  }

  private openBatch(firstSeq: number): Batch {
    if (this.closed) throw new Error('log is closed');
    const last = this.pending.at(-1);
    if (last && last.lines.length < this.opts.maxRecords) return last;
    let resolve!: () => void;
    let reject!: (err: Error) => void;
    const done = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
    done.catch(() => {}); // callers get the rejection through their own awaits
    const batch = {
      lines: [],
      sync: false,
      tapOnCommit: [],
      firstSeq,
      openedAt: performance.now(),
      deadLetters: [],
      done,
      resolve,
      reject,
    };
    this.pending.push(batch);
    return batch;
  }

  /**
   * Commit once the window has passed since the first waiting reading, or sooner when waiting gains
   * nothing. The window is maxDelayMs when a waiting reading is promised durability (QoS 1, a dead
   * letter), else syncIntervalMs: QoS 0 readings alone are committed, and synced, that often, so that
   * at a few readings a second the card is written every few seconds rather than every few hundred
   * milliseconds (each write also costs ext4's journal a commit for the file's times).
   */
  private schedule(batch: Batch): void {
    if (this.due(batch)) {
      // Once this turn of the event loop ends: readings that came in one read of a socket share the commit.
      if (!this.writing) this.flushing ??= setImmediate(() => this.flush()); // else the running commit starts the next when it ends
      return;
    }
    const window = this.pending.some((b) => b.sync) ? this.opts.maxDelayMs : this.syncIntervalMs;
    const at = batch.openedAt + window;
    if (this.timer && this.timerAt <= at) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.flush(), Math.max(0, at - performance.now()));
  }

  private get syncIntervalMs(): number {
    return this.opts.syncIntervalMs ?? DEFAULT_SYNC_INTERVAL_MS;
  }

  private due(batch: Batch | undefined = this.pending.at(-1)): boolean {
    const enough = this.pending.some((b) => b.sync) ? (this.opts.commitBytes ?? COMMIT_BYTES) : QOS0_COMMIT_BYTES;
    return this.pending.length > 1 || (batch !== undefined && batch.lines.length >= this.opts.maxRecords) || this.pendingSize >= enough;
  }

  /** Start a commit unless one is running; a running commit starts the next when it ends. */
  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.flushing) clearImmediate(this.flushing);
    this.flushing = undefined;
    if (this.writing || this.pending.length === 0) return;
    const batches = this.pending;
    const bytes = this.pendingSize;
    this.pending = [];
    this.pendingSize = 0;
    this.writing = this.write(batches, bytes).finally(() => {
      this.writing = null;
      // What came during the commit goes now if it is due or its window passed meanwhile, else at its timer.
      if (this.pending.length && (this.due() || !this.timer)) this.flush();
    });
  }

  /** Everything that queued up during the previous commit goes in one LevelDB batch: one fsync. */
  /** `bytes`: what the batches hold before compression (readings and dead letters). */
  private async write(batches: Batch[], bytes: number): Promise<void> {
    const ops: Op[] = [];
    const chunks: ChunkInfo[] = [];
    const values: Buffer[] = [];
    for (const batch of batches) {
      ops.push(...batch.deadLetters);
      const count = batch.lines.length;
      if (count === 0) continue;
      const lastSeq = batch.firstSeq + count - 1;
      const value = encodeChunk(batch.lines.join('\n'), { count, firstSeq: batch.firstSeq, lastSeq }, this.opts.encryptionKey);
      ops.push({ type: 'put', key: chunkKey(batch.firstSeq), value });
      chunks.push({ firstSeq: batch.firstSeq, lastSeq, bytes: value.length, committedAt: 0 });
      values.push(value);
    }
    if (chunks.length) ops.push({ type: 'put', key: 'm!lastSeq', value: utf8(chunks.at(-1)!.lastSeq) });
    // QoS 0 alone waited syncIntervalMs for this commit: synced with it. Committed sooner (256 kB, or
    // beside a running commit): synced within syncIntervalMs.
    const waited = performance.now() - batches[0].openedAt >= this.syncIntervalMs;
    if (!(await this.commitOps(ops, chunks, values, waited || batches.some((b) => b.sync)))) {
      const err = new Error('log closed before its commit succeeded');
      for (const b of batches) b.reject(err);
      return;
    }
    this.commits++;
    const now = Date.now();
    for (const c of chunks) c.committedAt = now;
    this.hooks.committed(chunks, values);
    if (chunks.length) this.durableSeq = chunks.at(-1)!.lastSeq;
    for (const b of batches) b.resolve();
    this.opts.onWritten?.(bytes);
    const done = performance.now();
    for (const b of batches) if (b.lines.length) this.opts.onCommitted?.((done - b.openedAt) / 1000);
    if (this.taps.size) for (const b of batches) if (b.tapOnCommit.length) for (const tap of this.taps) tap(b.tapOnCommit);
    this.hooks.durable();
  }

  /**
   * Write a commit until it succeeds: a failed one (disk full, I/O) is retried with backoff, the
   * database reopened, while ingest holds the senders. Nothing is acknowledged before it is on disk,
   * and nothing taken is given up. False only if the log is closed first.
   */
  private async commitOps(ops: Op[], chunks: ChunkInfo[], values: Buffer[], sync: boolean): Promise<boolean> {
    const backoff = new Backoff(100, 5000);
    for (;;) {
      try {
        if (this.writesHeld) throw new Error(this.writesHeld);
        await this.persist(ops, chunks, values, sync);
        if (this.health.state !== 'ok') {
          this.health = { state: 'ok', since: new Date().toISOString() };
          this.opts.logger.info({}, 'log commits succeed again; taking readings');
        }
        return true;
      } catch (err) {
        this.refusing(err);
      }
      await new Promise((r) => setTimeout(r, backoff.next()));
      if (this.closing) return false;
    }
  }

  /**
   * One commit: as a frame of the journal, synced when `sync` (else within syncIntervalMs), its chunks
   * kept for the next checkpoint; what else it holds (dead letters) also into LevelDB unsynced, where
   * they are listed. A large commit (and every one after it until LevelDB is synced, so the journal
   * never holds a commit whose predecessor is missing) goes whole into LevelDB, made durable by
   * syncing it instead.
   */
  private async persist(ops: Op[], chunks: ChunkInfo[], values: Buffer[], sync: boolean): Promise<void> {
    const lastSeq = chunks.at(-1)?.lastSeq ?? 0;
    const number = this.commitNumber + 1;
    const all: Op[] = [...ops, { type: 'put', key: 'm!journal', value: utf8(number) }];
    const frame = this.unjournaled ? undefined : encodeFrame(number, all);
    if (!frame || frame.length > Math.min(JOURNAL_FRAME_MAX, this.journal.size)) {
      await this.store.change(all);
      this.commitNumber = number;
      this.writtenSeq = Math.max(this.writtenSeq, lastSeq);
      this.unjournaled = true;
      if (sync) await this.checkpoint();
      else this.syncTimer ??= setTimeout(() => void this.syncNow(), this.syncIntervalMs);
      return;
    }
    if (!this.journal.fits(frame)) await this.checkpoint();
    if (ops.some((op) => op.key.startsWith('d!'))) await this.store.change(all.filter((op) => !isChunkPut(op)));
    await this.journal.write(frame, sync);
    chunks.forEach((c, i) => this.unfolded.set(c.firstSeq, values[i]));
    this.commitNumber = number;
    this.writtenSeq = Math.max(this.writtenSeq, lastSeq);
    if (!sync) this.syncTimer ??= setTimeout(() => void this.syncNow(), this.syncIntervalMs);
  }

  /**
   * LevelDB on disk with everything committed: the chunks of commits since the last checkpoint that no
   * consumer passed meanwhile go into it; the journal's frames so far are then no longer needed, and
   * the next is written from the ring's start (replay reads frames numbered one after another).
   */
  private async checkpoint(): Promise<void> {
    const fold = [...this.unfolded];
    const ops: Op[] = fold.map(([firstSeq, value]) => ({ type: 'put', key: chunkKey(firstSeq), value }));
    // Never lower than a commit LevelDB already holds: a seq once given is not given again.
    if (this.writtenSeq) ops.push({ type: 'put', key: 'm!lastSeq', value: utf8(this.writtenSeq) });
    for (const key of ['m!journal', 'm!folded']) ops.push({ type: 'put', key, value: utf8(this.commitNumber) });
    await this.store.change(ops, true);
    // Passed by every consumer while this was written: its deletion may have gone to LevelDB first.
    const passed: Op[] = [];
    for (const [firstSeq, value] of fold)
      if (this.unfolded.get(firstSeq) === value) this.unfolded.delete(firstSeq);
      else passed.push({ type: 'del', key: chunkKey(firstSeq) });
    if (passed.length) await this.store.change(passed);
    this.unjournaled = false;
    this.journal.restart();
  }

  /** Sync what was committed unsynced (QoS 0); a failure is the next commit's to meet. */
  private async syncNow(): Promise<void> {
    if (this.syncTimer) clearTimeout(this.syncTimer);
    this.syncTimer = null;
    try {
      await (this.unjournaled ? this.checkpoint() : this.journal.sync());
    } catch (err) {
      this.opts.logger.warn({ err: (err as Error).message }, 'log: syncing the journal failed; tried again with the next commit');
      this.syncTimer ??= setTimeout(() => void this.syncNow(), this.syncIntervalMs);
    }
  }

  private refusing(err: unknown): void {
    const at = new Date().toISOString();
    const state = `refusing: ${describeDiskError(err)}` as const;
    if (this.health.state !== state) {
      this.opts.logger.error(
        { err: (err as Error).message, cause: (err as { cause?: Error }).cause?.message },
        `log commit failed; holding senders until it succeeds (${state})`,
      );
      this.health = { state, since: at };
    }
    this.health.lastError = { message: describeDiskError(err), at };
  }
}
