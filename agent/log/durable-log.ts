// The durable log: accepted readings in lz4 chunks on LevelDB, written by group commit with sync,
// read by named consumers with durable cursors. A chunk is deleted once every consumer passed it.
import { mkdirSync } from 'node:fs';
import { ClassicLevel } from 'classic-level';
import type { Logger } from '../lib/logger.js';
import { coveredBy } from '../../mqtt-topic/topic.js';
import { Backoff } from '../lib/backoff.js';
import { describeDiskError } from '../lib/faults.js';
import { ByteCache } from './byte-cache.js';
import { ChunkBatch } from './chunk-batch.js';
import { ChunkText, TextBatch } from './chunk-text.js';
import { encodeFrame, Journal } from './journal.js';
import { CorruptChunk, encodeChunk, open, seal, verifyChunk, type ChunkHeader } from './chunk.js';
import { encodeRecord, LogBatch, type DeadLetter, type LogRecord, type NewRecord, type RefusedReading } from './record.js';

/** Where a consumer new to the log starts: the oldest reading it still holds, or the next one to come. */
export type StartAt = 'oldest' | 'newest';

export interface DurableLogOptions {
  dir: string;
  agentId: string;
  /** Longest a reading waits for its commit: the readings of this window share one sync (a PUBACK latency budget). */
  maxDelayMs: number;
  /** Commits of readings never promised durability (QoS 0 only) are synced at least this often. */
  syncIntervalMs?: number;
  /** Most readings in one commit (and one chunk). */
  maxRecords: number;
  /** AES-256-GCM key; chunks are sealed when set. */
  encryptionKey?: Buffer;
  /** Dead letters kept (oldest dropped first), and the bytes of each refused payload kept. */
  /** whenFull: hold (new ones wait for room, their senders held) or dropOldest (evicted, counted). */
  deadLetters: { maxCount: number; maxBytes: number; payloadCapBytes: number; whenFull: 'hold' | 'dropOldest' };
  /** Newest chunks kept in memory as written, bytes (default 4 MiB): consumers close behind read them without LevelDB. */
  recentChunkBytes?: number;
  /** After each commit, per batch of readings in it: how long its first reading waited, seconds (metrics). */
  onCommitted?: (seconds: number) => void;
  /** Bytes of readings and dead letters each commit took (before compression): disk pressure reads free space after every few MB. */
  onWritten?: (bytes: number) => void;
  log: Logger;
}

export interface LogStats {
  firstSeq: number;
  lastSeq: number;
  chunks: number;
  records: number;
  bytes: number;
  pendingBytes: number;
  commits: number;
  quarantinedChunks: number;
  deadLetters: number;
  deadLettersDropped: number;
  /** Readings given up before a consumer had them, per consumer and reason (e.g. `disk pressure`). */
  dropped: Record<string, Record<string, number>>;
}

/** Dead letters on these topics (less `except`) are kept no older than `before` and no more than `maxBytes`. */
export interface DeadLetterRule {
  topics: string[];
  except?: string[];
  before?: number;
  maxBytes?: number;
}

/** What dropping the oldest unsent chunk gave up. */
export interface ChunkDrop {
  firstSeq: number;
  lastSeq: number;
  bytes: number;
  /** Readings of it each consumer had not yet confirmed. */
  perConsumer: Record<string, number>;
}

interface ChunkInfo {
  firstSeq: number;
  lastSeq: number;
  bytes: number;
  /** When this process committed it (Date.now()); 0 for chunks found at start-up. */
  committedAt: number;
}

type Op = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string };

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

export class WrongKeyError extends Error {}

/** Where a consumer started reading when it was first registered. */
export interface ConsumerStart {
  startAt: StartAt;
  /** Its cursor then: it reads readings after this seq. */
  seq: number;
  /** When (ISO 8601). */
  at: string;
}

/** Why readings went before a consumer had them: it was added after the log had let them go. */
export const DELETED_BEFORE_ADDED = 'deleted before it was added';

/** Whether the log takes readings, and since when; `refusing` while commits fail (disk full, I/O). */
export interface LogHealth {
  state: 'ok' | `refusing: ${string}`;
  since: string;
  lastError?: { message: string; at: string };
}

const hex = (n: number) => n.toString(16).padStart(16, '0');
/** The write-ahead journal's size: a ring of commits, LevelDB synced each time round. */
const JOURNAL_BYTES = 4 * 1024 * 1024;
/**
 * Readings waiting beyond this many bytes (before compression) commit at once: a sync writes whole
 * pages, so a page's worth gains nothing by waiting for the window (and high rates keep low latency).
 */
const COMMIT_BYTES = 8 * 1024;
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
const chunkKey = (firstSeq: number) => `c!${hex(firstSeq)}`;
const KEY_CHECK = Buffer.from('edge-agent log key check');
/** Decompressed chunks kept for consumers reading near each other (each sink's lanes). */
const DECODED_CACHE_BYTES = 4 * 1024 * 1024;
/**
 * The newest chunks, compressed, as committed. Under load the event loop is busy with publishers'
 * sockets, and each LevelDB read a consumer awaits waits its turn behind them: reading the last few
 * commits from memory keeps the store and the sinks up with ingest.
 */
const RECENT_CHUNK_BYTES = 4 * 1024 * 1024;
const utf8 = (s: string | number) => Buffer.from(String(s));
const text = (v: Uint8Array) => Buffer.from(v).toString();

export class DurableLog {
  /** Reopened after a failed commit: LevelDB keeps failing writes after ENOSPC until it is. */
  private db: ClassicLevel<string, Uint8Array>;
  private health: LogHealth = { state: 'ok', since: new Date().toISOString() };
  private readonly chunks: ChunkInfo[] = [];
  private readonly cursors = new Map<string, number>();
  /** Decompressed recently read chunks, by firstSeq: consumers usually read the newest ones. */
  private readonly decoded = new ByteCache<ChunkText>(DECODED_CACHE_BYTES);
  /** The newest chunks as committed, by firstSeq. */
  private readonly recent: ByteCache<Uint8Array>;
  private readonly waiters = new Set<() => void>();
  private readonly deadLetterSizes: { id: number; bytes: number }[] = [];
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
  private nextDeadLetterId = 1;
  private deadLetterBytes = 0;
  private deadLetterState = { state: 'ok', since: new Date().toISOString() };
  /** Dead letters waiting for room (whenFull: hold): woken when some are removed. */
  private deadLetterWaiters: (() => void)[] = [];
  private counters = { commits: 0, quarantined: 0, deadLettersDropped: 0 };
  /** `consumer\u0000reason` -> readings dropped (kept in m!drop!...). */
  private readonly drops = new Map<string, number>();
  /** Where each consumer started (kept in m!start!...). */
  private readonly starts = new Map<string, ConsumerStart>();
  /** Seq ranges each consumer has read and not yet confirmed: in its hands, never dropped. */
  private readonly held = new Map<string, { from: number; to: number }[]>();
  /** Reads under way, by the seq they read after: the chunks past it may be in their hands already. */
  private readonly reading = new Map<symbol, number>();
  private closed = false;
  /** A write failed: LevelDB is reopened before the next one. */
  private broken = false;
  private reopening: Promise<void> | undefined;
  /** Chunk keys deleted under pressure and not yet compacted away. */
  private uncompacted: { from: string; to: string } | undefined;
  /** Set while disk pressure allows nothing but deletions: commits wait. */
  private writesHeld: string | undefined;
  /** close() was called: a commit that keeps failing gives up. */
  private closing = false;

  private journal!: Journal;
  /** The number of the last commit (journal frame); LevelDB keeps it as m!journal. */
  private commitNumber = 0;
  /** Syncs commits that were not (QoS 0 only) at the latest syncIntervalMs after the first. */
  private syncTimer: NodeJS.Timeout | null = null;
  /** Commits since the last checkpoint are in LevelDB only, unsynced: the next sync is LevelDB's. */
  private unjournaled = false;

  private constructor(private readonly opts: DurableLogOptions) {
    this.recent = new ByteCache(opts.recentChunkBytes ?? RECENT_CHUNK_BYTES);
    mkdirSync(opts.dir, { recursive: true });
    this.db = this.level();
  }

  private level(): ClassicLevel<string, Uint8Array> {
    // Chunks are read soon after they are written (from our own cache), so LevelDB's cache can stay small.
    return new ClassicLevel<string, Uint8Array>(this.opts.dir, {
      valueEncoding: 'view',
      cacheSize: 2 * 1024 * 1024,
      writeBufferSize: 4 * 1024 * 1024,
    });
  }

  static async open(opts: DurableLogOptions): Promise<DurableLog> {
    const log = new DurableLog(opts);
    await log.db.open();
    try {
      await log.checkKey();
      await log.replayJournal();
      await log.load();
    } catch (err) {
      await log.journal?.close();
      await log.db.close();
      throw err;
    }
    return log;
  }

  /**
   * Commits the journal holds that LevelDB lacks (a power cut took its unsynced writes) go into it
   * again; then LevelDB is synced, and the journal starts over.
   */
  private async replayJournal(): Promise<void> {
    const { journal, frames } = await Journal.open(`${this.opts.dir}/edge-journal`, JOURNAL_BYTES);
    this.journal = journal;
    this.commitNumber = Number(text((await this.db.get('m!journal')) ?? utf8(0)));
    const missing = frames.filter((f) => f.number > this.commitNumber);
    for (const frame of missing) await this.db.batch(frame.ops);
    if (missing.length) {
      this.commitNumber = missing.at(-1)!.number;
      this.opts.log.warn(
        { commits: missing.length, last: this.commitNumber },
        'log: commits LevelDB had lost (a power cut?) replayed from the journal',
      );
    }
    await this.checkpoint();
    if (frames.length) await journal.clear(); // in LevelDB on disk now; and the read left large folios cached
  }

  /** A wrong key must stop start-up, never yield garbage. */
  private async checkKey(): Promise<void> {
    const stored = await this.db.get('m!keycheck');
    const key = this.opts.encryptionKey;
    if (!stored) {
      if (key) await this.db.put('m!keycheck', seal(KEY_CHECK, key, Buffer.alloc(0)));
      return;
    }
    if (!key) throw new WrongKeyError('the log is encrypted: set buffer.encryption.keyFile to its key');
    let plain: Buffer;
    try {
      plain = open(Buffer.from(stored), key, Buffer.alloc(0));
    } catch {
      throw new WrongKeyError('buffer.encryption.keyFile does not hold the key this log was encrypted with');
    }
    if (!plain.equals(KEY_CHECK)) throw new WrongKeyError('buffer.encryption key check failed');
  }

  private async load(): Promise<void> {
    const meta = new Map<string, string>();
    for await (const [key, value] of this.db.iterator({ gte: 'm!', lt: 'm"' })) if (key !== 'm!keycheck') meta.set(key, text(value));
    for (const [key, value] of meta) if (key.startsWith('m!cursor!')) this.cursors.set(key.slice(9), Number(value));
    for (const [key, value] of meta) if (key.startsWith('m!drop!')) this.drops.set(key.slice(7), Number(value));
    for (const [key, value] of meta) if (key.startsWith('m!start!')) this.starts.set(key.slice(8), JSON.parse(value) as ConsumerStart);
    this.counters.quarantined = Number(meta.get('m!quarantined') ?? 0);
    this.counters.deadLettersDropped = Number(meta.get('m!dlDropped') ?? 0);
    let lastSeq = Number(meta.get('m!lastSeq') ?? 0);

    for await (const [key, value] of this.db.iterator({ gte: 'c!', lt: 'c"' })) {
      try {
        const h = verifyChunk(value);
        if (key !== chunkKey(h.firstSeq)) throw new CorruptChunk('key does not match its seq range');
        this.chunks.push({ firstSeq: h.firstSeq, lastSeq: h.lastSeq, bytes: value.byteLength, committedAt: 0 });
        lastSeq = Math.max(lastSeq, h.lastSeq);
      } catch (err) {
        if (!(err instanceof CorruptChunk)) throw err;
        await this.quarantine(key, value, err.message);
      }
    }
    for await (const [key, value] of this.db.iterator({ gte: 'd!', lt: 'd"' })) {
      const id = parseInt(key.slice(2), 16);
      this.deadLetterSizes.push({ id, bytes: value.byteLength });
      this.deadLetterBytes += value.byteLength;
      this.nextDeadLetterId = id + 1;
    }
    this.nextSeq = lastSeq + 1;
    this.durableSeq = lastSeq;
  }

  /** Move a damaged chunk aside (q!...), count it and say which readings it held. */
  private async quarantine(key: string, value: Uint8Array, reason: string): Promise<void> {
    const firstSeq = parseInt(key.slice(2), 16);
    let lastSeq: number | undefined;
    try {
      lastSeq = Number(Buffer.from(value).readBigUInt64BE(17));
    } catch {
      /* header unreadable */
    }
    this.counters.quarantined++;
    // Its range from the list, or (found at start-up) from its header when that is plausible.
    const upTo =
      this.chunks.find((c) => c.firstSeq === firstSeq)?.lastSeq ??
      (lastSeq !== undefined && lastSeq >= firstSeq && lastSeq - firstSeq < 100_000 ? lastSeq : firstSeq - 1);
    const lost = this.lostBy(firstSeq, upTo, 'corrupt chunk');
    await this.change([
      { type: 'put', key: `q!${key.slice(2)}!${Date.now()}`, value },
      { type: 'del', key },
      { type: 'put', key: 'm!quarantined', value: utf8(this.counters.quarantined) },
      ...lost.ops,
    ]);
    this.countDrops(lost.totals);
    this.unlist(firstSeq);
    this.opts.log.error({ firstSeq, lastSeq, reason }, 'corrupt log chunk quarantined');
  }

  private unlist(firstSeq: number): void {
    const i = this.chunks.findIndex((c) => c.firstSeq === firstSeq);
    if (i >= 0) this.chunks.splice(i, 1);
    this.forget(firstSeq);
  }

  // ---- writing ----

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

  /** At maxCount or maxBytes of dead letters. */
  get deadLettersFull(): boolean {
    const { maxCount, maxBytes } = this.opts.deadLetters;
    return this.deadLetterSizes.length >= maxCount || this.deadLetterBytes >= maxBytes;
  }

  /** For /health/ready: full dead letters are not ok, whichever the policy. */
  deadLetterStatus(): { state: string; since: string } {
    const { maxCount, whenFull } = this.opts.deadLetters;
    const full = `dead letters full (${this.deadLetterSizes.length} of ${maxCount}, ingest.deadLetters)`;
    const state = !this.deadLettersFull
      ? 'ok'
      : whenFull === 'hold'
        ? `refusing: ${full}; refused readings wait, their senders held, until some are replayed or purged`
        : `dropping: ${full}; the oldest go`;
    if (state !== this.deadLetterState.state) this.deadLetterState = { state, since: new Date().toISOString() };
    return this.deadLetterState;
  }

  /** Full, and new dead letters wait for room (whenFull: hold). */
  get holdingDeadLetters(): boolean {
    return this.opts.deadLetters.whenFull === 'hold' && this.deadLettersFull;
  }

  /**
   * Keep a refused reading once there is room (whenFull: hold): resolves once it is on disk. The
   * check and the append happen together, so waiters woken at once do not overfill.
   */
  async appendDeadLetterWhenRoom(refused: RefusedReading): Promise<void> {
    while (this.holdingDeadLetters && !this.closed) await new Promise<void>((resolve) => this.deadLetterWaiters.push(resolve));
    return this.appendDeadLetter(refused);
  }

  private deadLettersRemoved(): void {
    for (const wake of this.deadLetterWaiters.splice(0)) wake();
  }

  /** Keep a refused reading, in the same commit stream; bounded: at the cap the oldest go first (whenFull: dropOldest). */
  appendDeadLetter(refused: RefusedReading): Promise<void> {
    const id = this.nextDeadLetterId++;
    const kept = refused.payload.subarray(0, this.opts.deadLetters.payloadCapBytes);
    const entry: DeadLetter = {
      id,
      ...refused,
      payload: kept.toString('base64'),
      payloadBytes: refused.payload.length,
      truncated: kept.length < refused.payload.length,
    };
    const value = this.sealDeadLetter(id, utf8(JSON.stringify(entry)));
    const batch = this.openBatch(this.nextSeq);
    batch.deadLetters.push({ type: 'put', key: `d!${hex(id)}`, value });
    if (!batch.sync) {
      batch.sync = true; // acknowledged once on disk
      batch.openedAt = performance.now();
    }
    this.pendingSize += value.length;
    this.deadLetterSizes.push({ id, bytes: value.length });
    this.deadLetterBytes += value.length;
    const { maxCount, maxBytes, whenFull } = this.opts.deadLetters;
    while (
      whenFull === 'dropOldest' &&
      (this.deadLetterSizes.length > maxCount || (this.deadLetterBytes > maxBytes && this.deadLetterSizes.length > 1))
    ) {
      const oldest = this.deadLetterSizes.shift()!;
      this.deadLetterBytes -= oldest.bytes;
      this.counters.deadLettersDropped++;
      batch.deadLetters.push({ type: 'del', key: `d!${hex(oldest.id)}` });
    }
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

  /** False while commits fail: ingest holds every sender until they succeed again. */
  get accepting(): boolean {
    return this.health.state === 'ok';
  }

  status(): LogHealth {
    return { ...this.health };
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
    const enough = this.pending.some((b) => b.sync) ? COMMIT_BYTES : QOS0_COMMIT_BYTES;
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
    if (batches.some((b) => b.deadLetters.length))
      ops.push({ type: 'put', key: 'm!dlDropped', value: utf8(this.counters.deadLettersDropped) });
    // QoS 0 alone waited syncIntervalMs for this commit: synced with it. Committed sooner (8 kB, or
    // beside a running commit): synced within syncIntervalMs.
    const waited = performance.now() - batches[0].openedAt >= this.syncIntervalMs;
    if (!(await this.commitOps(ops, waited || batches.some((b) => b.sync)))) {
      const err = new Error('log closed before its commit succeeded');
      for (const b of batches) b.reject(err);
      return;
    }
    this.counters.commits++;
    const now = Date.now();
    for (const c of chunks) c.committedAt = now;
    this.chunks.push(...chunks);
    chunks.forEach((c, i) => this.keepRecent(c.firstSeq, values[i]));
    if (chunks.length) this.durableSeq = chunks.at(-1)!.lastSeq;
    for (const b of batches) b.resolve();
    this.opts.onWritten?.(bytes);
    const done = performance.now();
    for (const b of batches) if (b.lines.length) this.opts.onCommitted?.((done - b.openedAt) / 1000);
    if (this.taps.size) for (const b of batches) if (b.tapOnCommit.length) for (const tap of this.taps) tap(b.tapOnCommit);
    this.wakeAll();
  }

  /**
   * Write a commit until it succeeds: a failed one (disk full, I/O) is retried with backoff, the
   * database reopened, while ingest holds the senders. Nothing is acknowledged before it is on disk,
   * and nothing taken is given up. False only if the log is closed first.
   */
  private async commitOps(ops: Op[], sync: boolean): Promise<boolean> {
    const backoff = new Backoff(100, 5000);
    for (;;) {
      try {
        if (this.writesHeld) throw new Error(this.writesHeld);
        await this.persist(ops, sync);
        if (this.health.state !== 'ok') {
          this.health = { state: 'ok', since: new Date().toISOString() };
          this.opts.log.info({}, 'log commits succeed again; taking readings');
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
   * One commit: into LevelDB unsynced, then as a frame of the journal, synced when `sync` (else within
   * syncIntervalMs). A large commit (and every one after it until LevelDB is synced, so the journal
   * never holds a commit whose predecessor is missing) is made durable by syncing LevelDB instead.
   */
  private async persist(ops: Op[], sync: boolean): Promise<void> {
    const number = this.commitNumber + 1;
    const all: Op[] = [...ops, { type: 'put', key: 'm!journal', value: utf8(number) }];
    await this.change(all);
    const frame = this.unjournaled ? undefined : encodeFrame(number, all);
    if (!frame || frame.length > Math.min(JOURNAL_FRAME_MAX, this.journal.size)) {
      this.commitNumber = number;
      this.unjournaled = true;
      if (sync) await this.checkpoint();
      else this.syncTimer ??= setTimeout(() => void this.syncNow(), this.syncIntervalMs);
      return;
    }
    if (!this.journal.fits(frame)) await this.checkpoint();
    await this.journal.write(frame, sync);
    this.commitNumber = number;
    if (!sync) this.syncTimer ??= setTimeout(() => void this.syncNow(), this.syncIntervalMs);
  }

  /**
   * LevelDB on disk with everything written to it: the journal's frames so far are no longer needed,
   * and the next is written from the ring's start (replay reads frames numbered one after another).
   */
  private async checkpoint(): Promise<void> {
    await this.change([{ type: 'put', key: 'm!journal', value: utf8(this.commitNumber) }], true);
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
      this.opts.log.warn({ err: (err as Error).message }, 'log: syncing the journal failed; tried again with the next commit');
      this.syncTimer ??= setTimeout(() => void this.syncNow(), this.syncIntervalMs);
    }
  }

  private refusing(err: unknown): void {
    const at = new Date().toISOString();
    const state = `refusing: ${describeDiskError(err)}` as const;
    if (this.health.state !== state) {
      this.opts.log.error(
        { err: (err as Error).message, cause: (err as { cause?: Error }).cause?.message },
        `log commit failed; holding senders until it succeeds (${state})`,
      );
      this.health = { state, since: at };
    }
    this.health.lastError = { message: describeDiskError(err), at };
  }

  /**
   * A write other than a commit (cursors, deletions, quarantine). LevelDB keeps a failed background
   * write (ENOSPC in a compaction) and fails every write after it until reopened: after a failure the
   * next write reopens it first. The error is the caller's, an error of the moment.
   */
  private async change(ops: Op[], sync = false): Promise<void> {
    if (this.broken) await this.reopen();
    try {
      await this.db.batch(ops, { sync });
    } catch (err) {
      this.broken = true;
      throw err;
    }
  }

  /** While a reason is set (disk pressure at its reserve), commits wait: nothing but deletions is written. */
  holdWrites(reason: string | undefined): void {
    this.writesHeld = reason;
  }

  /** LevelDB keeps a write error (ENOSPC) for good: a fresh handle writes once the disk can. */
  private reopen(): Promise<void> {
    this.reopening ??= (async () => {
      await this.db.close();
      this.db = this.level();
      await this.db.open();
      this.broken = false;
    })().finally(() => (this.reopening = undefined));
    return this.reopening;
  }

  // ---- reading ----

  /**
   * Make a consumer known. A new one starts at the oldest reading the log still holds (`oldest`:
   * those no longer held are counted as dropped for it, `deleted before it was added`) or after the
   * newest durable one (`newest`: nothing counted, it asked for nothing older).
   */
  async registerConsumer(name: string, startAt: StartAt = 'oldest'): Promise<void> {
    if (this.cursors.has(name)) return;
    const cursor = startAt === 'newest' || !this.chunks.length ? this.durableSeq : this.chunks[0].firstSeq - 1;
    const held = this.heldReadings();
    const gone = startAt === 'newest' ? 0 : this.durableSeq - held;
    const ops: Op[] = [
      { type: 'put', key: `m!cursor!${name}`, value: utf8(cursor) },
      { type: 'put', key: `m!start!${name}`, value: utf8(JSON.stringify({ startAt, seq: cursor, at: new Date().toISOString() })) },
    ];
    const key = `${name}\u0000${DELETED_BEFORE_ADDED}`;
    if (gone > 0) ops.push({ type: 'put', key: `m!drop!${key}`, value: utf8(gone) });
    // Known before the write: a commit meanwhile must not collect the chunks it starts at.
    this.cursors.set(name, cursor);
    this.starts.set(name, { startAt, seq: cursor, at: new Date().toISOString() });
    await this.change(ops);
    if (gone > 0) {
      this.drops.set(key, gone);
      this.opts.log.warn(
        { consumer: name, startAt, from: cursor + 1, gone },
        'new log consumer: readings the log no longer held are counted as dropped for it; it starts at the oldest one still held',
      );
    } else {
      this.opts.log.info({ consumer: name, startAt, from: cursor + 1 }, 'new log consumer');
    }
  }

  /** Where a consumer started (set when it was first registered); undefined for one from before this was kept. */
  startOf(name: string): ConsumerStart | undefined {
    return this.starts.get(name);
  }

  /** Forget a consumer (a sink removed from the config), so it no longer holds chunks back. */
  async dropConsumer(name: string): Promise<void> {
    if (!this.cursors.delete(name)) return;
    this.starts.delete(name);
    await this.change([
      { type: 'del', key: `m!cursor!${name}` },
      { type: 'del', key: `m!start!${name}` },
    ]);
    await this.collect([]);
  }

  consumers(): string[] {
    return [...this.cursors.keys()];
  }

  cursor(consumer: string): number {
    const c = this.cursors.get(consumer);
    if (c === undefined) throw new Error(`unknown log consumer ${consumer}`);
    return c;
  }

  get lastSeq(): number {
    return this.durableSeq;
  }

  /** Up to `max` durable readings with seq > afterSeq, in order, parsed. */
  async read(consumer: string, afterSeq: number, max: number): Promise<LogRecord[]> {
    return (await this.readBatch(consumer, afterSeq, max))?.records() ?? [];
  }

  /** Up to `max` consecutive durable readings after afterSeq, as JSON lines; null if none. */
  async readBatch(consumer: string, afterSeq: number, max: number): Promise<LogBatch | null> {
    const texts = await this.readTexts(consumer, afterSeq, max);
    return texts && new LogBatch(this.opts.agentId, texts.lines(), texts.firstSeq);
  }

  /**
   * Up to `max` consecutive durable readings after afterSeq, as the decompressed texts of their
   * chunks; null if none. For a consumer that holds readings a while and turns few into strings.
   * `peek`: only a look (a status), not readings taken in hand.
   */
  async readTexts(consumer: string, afterSeq: number, max: number, peek = false): Promise<TextBatch | null> {
    return this.whileReading(afterSeq, () => this.readTextsNow(consumer, afterSeq, max, peek));
  }

  /** While a read runs, no chunk it may take is dropped under pressure (it holds them only once it returns). */
  private async whileReading<T>(afterSeq: number, read: () => Promise<T>): Promise<T> {
    const token = Symbol();
    this.reading.set(token, afterSeq);
    try {
      return await read();
    } finally {
      this.reading.delete(token);
    }
  }

  private async readTextsNow(consumer: string, afterSeq: number, max: number, peek: boolean): Promise<TextBatch | null> {
    this.cursor(consumer);
    const texts: ChunkText[] = [];
    let firstSeq = 0;
    let lastSeq = 0;
    for await (const { from, value } of this.consecutive(afterSeq, (c) => this.textOf(c))) {
      if (!texts.length) firstSeq = from;
      texts.push(value);
      lastSeq = Math.min(value.lastSeq, firstSeq + max - 1);
      if (lastSeq - firstSeq + 1 >= max) break;
    }
    if (texts.length && !peek) this.hold(consumer, firstSeq, lastSeq);
    return texts.length ? new TextBatch(this.opts.agentId, texts, firstSeq, lastSeq) : null;
  }

  /**
   * Durable readings after afterSeq as whole chunks, still compressed, up to about `max` readings or
   * `maxBytes` of chunks (at least one chunk); null if none. For a consumer that decodes them elsewhere.
   */
  async readChunks(consumer: string, afterSeq: number, max: number, maxBytes = Infinity): Promise<ChunkBatch | null> {
    return this.whileReading(afterSeq, () => this.readChunksNow(consumer, afterSeq, max, maxBytes));
  }

  private async readChunksNow(consumer: string, afterSeq: number, max: number, maxBytes: number): Promise<ChunkBatch | null> {
    this.cursor(consumer);
    const values: Uint8Array[] = [];
    let firstSeq = 0;
    let lastSeq = 0;
    let bytes = 0;
    for await (const { info, from, value } of this.consecutive(afterSeq, async (c) => (await this.verified(c))?.value ?? null)) {
      if (!values.length) firstSeq = from;
      values.push(value);
      lastSeq = info.lastSeq;
      bytes += value.byteLength;
      if (lastSeq - firstSeq + 1 >= max || bytes >= maxBytes) break;
    }
    if (values.length) this.hold(consumer, firstSeq, lastSeq);
    return values.length ? new ChunkBatch(this.opts.agentId, values, firstSeq, lastSeq, this.opts.encryptionKey) : null;
  }

  /**
   * The chunks holding readings after afterSeq, in order, with the first seq each contributes, up to
   * a gap (a quarantined chunk). `load` reads one; null means it was taken out of the list.
   */
  private async *consecutive<T>(
    afterSeq: number,
    load: (info: ChunkInfo) => Promise<T | null>,
  ): AsyncGenerator<{ info: ChunkInfo; from: number; value: T }> {
    let next = 0; // the seq the next chunk must start at; 0 before the first
    // Found by seq at each step, not by index: a consumer's commit may drop chunks from the front
    // of the list while this reads (a batch prepared while the one before it settles).
    for (let seq = afterSeq; ;) {
      const i = this.firstChunkAfter(seq);
      if (i >= this.chunks.length) return;
      const info = this.chunks[i];
      const from = Math.max(afterSeq + 1, info.firstSeq);
      if (next && from !== next) return; // a gap: stop here
      const value = await load(info);
      if (value === null) continue; // taken out of the list: look again
      yield { info, from, value };
      next = info.lastSeq + 1;
      seq = info.lastSeq;
    }
  }

  /** A chunk as stored, after its checksum; null once quarantined (or found missing), and out of the list. */
  private async verified(info: ChunkInfo): Promise<{ value: Uint8Array; header: ChunkHeader } | null> {
    const key = chunkKey(info.firstSeq);
    const value = this.recent.get(info.firstSeq) ?? (await this.db.get(key));
    if (!value) {
      const lost = this.lostBy(info.firstSeq, info.lastSeq, 'chunk missing');
      this.unlist(info.firstSeq);
      await this.change(lost.ops);
      this.countDrops(lost.totals);
      this.opts.log.error({ firstSeq: info.firstSeq, lastSeq: info.lastSeq }, 'log chunk missing');
      return null;
    }
    try {
      return { value, header: verifyChunk(value) };
    } catch (err) {
      if (!(err instanceof CorruptChunk)) throw err;
      await this.quarantine(key, value, err.message);
      return null;
    }
  }

  private firstChunkAfter(seq: number): number {
    let lo = 0;
    let hi = this.chunks.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.chunks[mid].lastSeq <= seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private async textOf(info: ChunkInfo): Promise<ChunkText | null> {
    const cached = this.decoded.get(info.firstSeq);
    if (cached) return cached;
    const chunk = await this.verified(info);
    if (!chunk) return null;
    try {
      const text = ChunkText.decode(chunk.value, chunk.header, this.opts.encryptionKey);
      this.decoded.set(info.firstSeq, text, text.size);
      return text;
    } catch (err) {
      if (!(err instanceof CorruptChunk)) throw err;
      await this.quarantine(chunkKey(info.firstSeq), chunk.value, err.message);
      return null;
    }
  }

  private keepRecent(firstSeq: number, value: Buffer): void {
    if (value.length <= this.recent.limit) this.recent.set(firstSeq, value, value.length);
  }

  /** Drop a chunk from the in-memory caches (it was deleted, quarantined or found missing). */
  private forget(firstSeq: number): void {
    this.recent.delete(firstSeq);
    this.decoded.delete(firstSeq);
  }

  /** When the reading with this seq became durable in this process (Date.now()); 0 if before it started, or gone. */
  committedAt(seq: number): number {
    const chunk = this.chunks[this.firstChunkAfter(seq - 1)];
    return chunk && chunk.firstSeq <= seq ? chunk.committedAt : 0;
  }

  /** Let every waitFor() return now (consumers stopping). */
  wakeAll(): void {
    for (const wake of this.waiters) wake();
    this.waiters.clear();
  }

  /** Resolves once a reading with seq > afterSeq is durable (or after `ms`). */
  waitFor(afterSeq: number, ms: number): Promise<void> {
    if (this.durableSeq > afterSeq || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.waiters.add(done);
    });
  }

  /** A consumer read from..to: those readings are in its hands until it confirms them. */
  private hold(consumer: string, from: number, to: number): void {
    const ranges = this.held.get(consumer) ?? [];
    const joined = ranges.find((r) => from <= r.to + 1 && to >= r.from - 1);
    if (joined) {
      joined.from = Math.min(joined.from, from);
      joined.to = Math.max(joined.to, to);
    } else {
      ranges.push({ from, to });
    }
    this.held.set(consumer, ranges);
  }

  private isHeld(firstSeq: number, lastSeq: number): boolean {
    for (const ranges of this.held.values()) if (ranges.some((r) => r.from <= lastSeq && r.to >= firstSeq)) return true;
    for (const after of this.reading.values()) if (lastSeq > after) return true;
    return false;
  }

  /** Record that a consumer has everything up to seq; drop chunks all consumers passed. */
  async commit(consumer: string, seq: number): Promise<void> {
    if (seq <= this.cursor(consumer)) return;
    this.cursors.set(consumer, seq);
    const ranges = this.held.get(consumer);
    if (ranges) {
      const left = ranges.filter((r) => r.to > seq);
      for (const r of left) r.from = Math.max(r.from, seq + 1);
      this.held.set(consumer, left);
    }
    await this.collect([{ type: 'put', key: `m!cursor!${consumer}`, value: utf8(seq) }]);
  }

  /** Write `ops` with the deletion of every chunk all consumers have passed. */
  private async collect(ops: Op[]): Promise<void> {
    const floor = this.cursors.size ? Math.min(...this.cursors.values()) : 0; // no consumer: keep everything
    while (this.chunks.length && this.chunks[0].lastSeq <= floor) {
      const gone = this.chunks.shift()!;
      this.forget(gone.firstSeq);
      ops.push({ type: 'del', key: chunkKey(gone.firstSeq) });
    }
    await this.change(ops);
  }

  // ---- giving up under disk pressure ----

  /**
   * Delete the oldest chunk (ending by `upTo`) some consumer has not confirmed and none holds in its
   * hands (read, being sent), counting its readings against each consumer that had not confirmed
   * them; null if none.
   */
  async dropOldestUnsent(reason: string, upTo = Infinity): Promise<ChunkDrop | null> {
    const floor = Math.min(...this.cursors.values()); // a chunk past it is unsent to someone
    const chunk = this.chunks.find((c) => c.lastSeq <= upTo && c.lastSeq > floor && !this.isHeld(c.firstSeq, c.lastSeq));
    if (!chunk) return null;
    const { ops, totals, perConsumer } = this.lostBy(chunk.firstSeq, chunk.lastSeq, reason);
    ops.unshift({ type: 'del', key: chunkKey(chunk.firstSeq) });
    // Out of the list before the write: no consumer takes it in hand meanwhile (and its count stays exact).
    this.unlist(chunk.firstSeq);
    try {
      await this.change(ops, true);
    } catch (err) {
      this.chunks.splice(this.firstChunkAfter(chunk.firstSeq - 1), 0, chunk);
      throw err;
    }
    this.countDrops(totals);
    const key = chunkKey(chunk.firstSeq);
    this.uncompacted = {
      from: this.uncompacted && this.uncompacted.from < key ? this.uncompacted.from : key,
      to: this.uncompacted && this.uncompacted.to > key ? this.uncompacted.to : key,
    };
    return { firstSeq: chunk.firstSeq, lastSeq: chunk.lastSeq, bytes: chunk.bytes, perConsumer };
  }

  /**
   * The readings firstSeq..lastSeq going from the log, counted for each consumer that had not
   * confirmed them: the writes that keep the counts, the new totals (counted once written), and per
   * consumer how many. Every reading a consumer never gets is counted here, when it goes: a reader
   * that later finds it gone passes over it without counting again.
   */
  private lostBy(
    firstSeq: number,
    lastSeq: number,
    reason: string,
  ): { ops: Op[]; totals: Map<string, number>; perConsumer: Record<string, number> } {
    const ops: Op[] = [];
    const totals = new Map<string, number>();
    const perConsumer: Record<string, number> = {};
    for (const [consumer, cursor] of this.cursors) {
      const lost = lastSeq - Math.max(cursor, firstSeq - 1);
      if (lost <= 0) continue;
      perConsumer[consumer] = lost;
      const key = `${consumer}\u0000${reason}`;
      totals.set(key, (this.drops.get(key) ?? 0) + lost);
      ops.push({ type: 'put', key: `m!drop!${key}`, value: utf8(totals.get(key)!) });
    }
    return { ops, totals, perConsumer };
  }

  private countDrops(totals: Map<string, number>): void {
    for (const [key, total] of totals) this.drops.set(key, total);
  }

  /** Delete up to `count` of the oldest dead letters; how many went. */
  async dropOldestDeadLetters(count: number): Promise<number> {
    const gone = this.deadLetterSizes.slice(0, count);
    if (!gone.length) return 0;
    this.counters.deadLettersDropped += gone.length;
    await this.change([
      ...gone.map((d): Op => ({ type: 'del', key: `d!${hex(d.id)}` })),
      { type: 'put', key: 'm!dlDropped', value: utf8(this.counters.deadLettersDropped) },
    ]);
    this.deadLetterSizes.splice(0, gone.length);
    for (const d of gone) this.deadLetterBytes -= d.bytes;
    this.deadLettersRemoved();
    return gone.length;
  }

  /**
   * LevelDB frees the space of deleted chunks and dead letters only as it compacts their files: do it
   * now, for the keys deleted (only the files holding them are rewritten, not the whole log).
   */
  async compact(what: 'chunks' | 'deadLetters'): Promise<void> {
    if (what === 'deadLetters') return this.db.compactRange('d!', 'd"');
    const range = this.uncompacted;
    if (!range) return;
    await this.db.compactRange(range.from, `${range.to}~`);
    this.uncompacted = undefined;
  }

  // ---- dead letters ----

  /** Newest first: up to `limit` dead letters older than `beforeId` that `matches` takes. */
  async deadLetters(limit = 100, beforeId?: number, matches: (letter: DeadLetter) => boolean = () => true): Promise<DeadLetter[]> {
    const out: DeadLetter[] = [];
    if (limit <= 0) return out;
    const lt = beforeId === undefined ? 'd"' : `d!${hex(beforeId)}`;
    for await (const [key, value] of this.db.iterator({ gte: 'd!', lt, reverse: true })) {
      const letter = JSON.parse(text(this.openDeadLetter(key, value))) as DeadLetter;
      if (!matches(letter)) continue;
      out.push(letter);
      if (out.length >= limit) break;
    }
    return out;
  }

  async deadLetter(id: number): Promise<DeadLetter | undefined> {
    const key = `d!${hex(id)}`;
    const value = await this.db.get(key);
    return value === undefined ? undefined : (JSON.parse(text(this.openDeadLetter(key, value))) as DeadLetter);
  }

  /** Delete these dead letters (replayed, or purged on request); how many there were. */
  async removeDeadLetters(ids: number[]): Promise<number> {
    const gone = new Set(ids.filter((id) => this.deadLetterSizes.some((d) => d.id === id)));
    if (!gone.size) return 0;
    await this.change([...gone].map((id): Op => ({ type: 'del', key: `d!${hex(id)}` })));
    for (const d of this.deadLetterSizes) if (gone.has(d.id)) this.deadLetterBytes -= d.bytes;
    this.deadLetterSizes.splice(0, this.deadLetterSizes.length, ...this.deadLetterSizes.filter((d) => !gone.has(d.id)));
    this.deadLettersRemoved();
    return gone.size;
  }

  /**
   * Delete dead letters refused before `before` (ms since the epoch), and those past a rule of the
   * first rule whose topics match theirs: refused before its `before`, or beyond its `maxBytes` counted
   * from the newest. How many went.
   */
  async pruneDeadLetters(before: number, rules: DeadLetterRule[] = []): Promise<number> {
    const ops: Op[] = [];
    const gone = new Set<number>();
    const used = rules.map(() => 0);
    const matchers = rules.map((r) => coveredBy(r));
    for await (const [key, value] of this.db.iterator({ gte: 'd!', lt: 'd"', reverse: true })) {
      const letter = JSON.parse(text(this.openDeadLetter(key, value))) as DeadLetter;
      const i = matchers.findIndex((covers) => covers(letter.topic));
      const rule = rules[i];
      if (rule?.maxBytes !== undefined) used[i] += value.byteLength;
      if (
        letter.time < before ||
        (rule && ((rule.before !== undefined && letter.time < rule.before) || (rule.maxBytes !== undefined && used[i] > rule.maxBytes)))
      ) {
        ops.push({ type: 'del', key });
        gone.add(parseInt(key.slice(2), 16));
      }
    }
    if (!ops.length) return 0;
    await this.change(ops);
    const kept = this.deadLetterSizes.filter((d) => !gone.has(d.id));
    for (const d of this.deadLetterSizes) if (gone.has(d.id)) this.deadLetterBytes -= d.bytes;
    this.deadLetterSizes.splice(0, this.deadLetterSizes.length, ...kept);
    this.deadLettersRemoved();
    return ops.length;
  }

  /** Dead letters hold payloads too: sealed like the chunks when the log is encrypted. */
  private sealDeadLetter(id: number, plain: Buffer): Buffer {
    const key = this.opts.encryptionKey;
    return key ? seal(plain, key, utf8(`d!${hex(id)}`)) : plain;
  }

  private openDeadLetter(dbKey: string, value: Uint8Array): Uint8Array {
    const key = this.opts.encryptionKey;
    // One written before encryption was configured is plain JSON.
    return key && value[0] !== 0x7b ? open(Buffer.from(value), key, utf8(dbKey)) : value;
  }

  stats(): LogStats {
    return {
      firstSeq: this.chunks[0]?.firstSeq ?? this.durableSeq + 1,
      lastSeq: this.durableSeq,
      chunks: this.chunks.length,
      records: this.heldReadings(),
      bytes: this.chunks.reduce((n, c) => n + c.bytes, 0),
      pendingBytes: this.pendingBytes,
      commits: this.counters.commits,
      quarantinedChunks: this.counters.quarantined,
      deadLetters: this.deadLetterSizes.length,
      deadLettersDropped: this.counters.deadLettersDropped,
      dropped: this.dropCounts(),
    };
  }

  /** Readings the log's chunks hold. */
  private heldReadings(): number {
    return this.chunks.reduce((n, c) => n + c.lastSeq - c.firstSeq + 1, 0);
  }

  /** Readings that went before this consumer had them, per reason. */
  droppedFor(consumer: string): Record<string, number> {
    return this.dropCounts()[consumer] ?? {};
  }

  private dropCounts(): Record<string, Record<string, number>> {
    const out: Record<string, Record<string, number>> = {};
    for (const [key, n] of this.drops) {
      const [consumer, reason] = key.split('\u0000');
      (out[consumer] ??= {})[reason] = n;
    }
    return out;
  }

  /** Commit now what is pending (not waiting for the group commit's delay); resolves once it is on disk. */
  async commitNow(): Promise<void> {
    const last = this.pending.at(-1)?.done ?? this.writing;
    this.flush();
    await last;
    await this.syncNow();
  }

  /** Commit what is pending, then close. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closing = true;
    this.flush();
    while (this.writing) {
      await this.writing;
      this.flush();
    }
    this.closed = true;
    this.wakeAll();
    this.deadLettersRemoved(); // waiters then fail (the log is closed): their senders get no PUBACK
    await this.syncNow();
    await this.journal.close();
    await this.db.close();
  }
}
