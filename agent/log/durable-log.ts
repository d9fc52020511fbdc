// The durable log: accepted readings in lz4 chunks on LevelDB, written by group commit with sync,
// read by named consumers with durable cursors. A chunk is deleted once every consumer passed it.
// This file puts the parts together; each job is a file of its own:
//   group-commit.ts  writing: the commit window, the journal, retries of a failed commit
//   cursors.ts       consumers: cursors, starts, readings in hand, drop counts, chunk clean-up
//   readers.ts       reading: texts or compressed chunks, the in-memory caches, checks
//   dead-letters.ts  refused readings, bounded
//   relief.ts        giving up chunks under disk pressure, and compaction
//   level-store.ts   LevelDB, reopened after a failed write
import type { RefusedReading } from '../ingest/reading.js';
import type { Logger } from '../lib/logger.js';
import type { ChunkBatch } from './chunk-batch.js';
import { ChunkList, type ChunkInfo } from './chunk-list.js';
import type { TextBatch } from './chunk-text.js';
import { CorruptChunk, open, seal, verifyChunk } from './chunk.js';
import { Cursors, type ConsumerStart, type StartAt } from './cursors.js';
import { DeadLetters, type DeadLetterLimits, type DeadLetterRule } from './dead-letters.js';
import { GroupCommit, type LogHealth } from './group-commit.js';
import { chunkKey, text, utf8 } from './keys.js';
import { LevelStore, type Level } from './level-store.js';
import { Readers } from './readers.js';
import { LogBatch, type DeadLetter, type LogRecord, type NewRecord } from './record.js';
import { Relief, type ChunkDrop } from './relief.js';

export { DELETED_BEFORE_ADDED, type ConsumerStart, type StartAt } from './cursors.js';
export type { DeadLetterRule } from './dead-letters.js';
export type { LogHealth } from './group-commit.js';
export type { ChunkDrop } from './relief.js';

export interface DurableLogOptions {
  dir: string;
  agentId: string;
  /** Longest a reading waits for its commit: the readings of this window share one sync (a PUBACK latency budget). */
  maxDelayMs: number;
  /** Commits of readings never promised durability (QoS 0 only) are synced at least this often. */
  syncIntervalMs?: number;
  /** Waiting readings past this many bytes (before compression) commit without waiting for the window (default 6 kB). */
  commitBytes?: number;
  /** Most readings in one commit (and one chunk). */
  maxRecords: number;
  /** AES-256-GCM key; chunks are sealed when set. */
  encryptionKey?: Buffer;
  /** Dead letters kept (oldest dropped first), and the bytes of each refused payload kept. */
  deadLetters: DeadLetterLimits;
  /** Newest chunks kept in memory as written, bytes (default 4 MiB): consumers close behind read them without LevelDB. */
  recentChunkBytes?: number;
  /** After each commit, per batch of readings in it: how long its first reading waited, seconds (metrics). */
  onCommitted?: (seconds: number) => void;
  /** Bytes of readings and dead letters each commit took (before compression): disk pressure reads free space after every few MB. */
  onWritten?: (bytes: number) => void;
  /** How LevelDB is opened (a test keeps the handle to damage chunks on disk). */
  level?: (dir: string) => Level;
  logger: Logger;
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

export class WrongKeyError extends Error {}

const KEY_CHECK = Buffer.from('edge-agent log key check');

export class DurableLog {
  private readonly store: LevelStore;
  private readonly chunks = new ChunkList();
  private readonly cursors: Cursors;
  private readonly readers: Readers;
  private readonly relief: Relief;
  private readonly letters: DeadLetters;
  private writer!: GroupCommit; // set by open()
  private readonly waiters = new Set<() => void>();
  private quarantined = 0;

  /** The log's directory: its LevelDB and its journal. */
  get dir(): string {
    return this.opts.dir;
  }

  private constructor(private readonly opts: DurableLogOptions) {
    this.store = new LevelStore(opts.dir, opts.level);
    this.cursors = new Cursors(this.store, this.chunks, (firstSeq) => this.forget(firstSeq), opts.logger);
    this.readers = new Readers(opts, this.store, this.chunks, this.cursors, {
      quarantine: (key, value, reason) => this.quarantine(key, value, reason),
      missing: (info) => this.missing(info),
      unfolded: (firstSeq) => this.writer.unfoldedChunk(firstSeq),
    });
    this.relief = new Relief(
      this.store,
      this.chunks,
      this.cursors,
      (firstSeq) => this.unlist(firstSeq),
      (firstSeq) => this.writer.unfoldedChunk(firstSeq) !== undefined,
    );
    this.letters = new DeadLetters(
      opts.deadLetters,
      opts.encryptionKey,
      this.store,
      (build) => this.writer.commitDeadLetter(build),
      () => this.writer.isClosed,
    );
  }

  static async open(opts: DurableLogOptions): Promise<DurableLog> {
    const log = new DurableLog(opts);
    await log.store.open();
    try {
      await log.checkKey();
      log.writer = await GroupCommit.open(opts, log.store, {
        committed: (chunks, values) => {
          log.chunks.add(...chunks);
          chunks.forEach((c, i) => log.readers.keepRecent(c.firstSeq, values[i]));
        },
        durable: () => log.wakeAll(),
      });
      log.writer.startAfter(await log.load());
      await log.cursors.collect(); // chunks the journal gave back that every consumer had passed
    } catch (err) {
      await log.writer?.abandon();
      await log.store.close();
      throw err;
    }
    return log;
  }

  /** A wrong key must stop start-up, never yield garbage. */
  private async checkKey(): Promise<void> {
    const stored = await this.store.get('m!keycheck');
    const key = this.opts.encryptionKey;
    if (!stored) {
      if (key) await this.store.change([{ type: 'put', key: 'm!keycheck', value: seal(KEY_CHECK, key, Buffer.alloc(0)) }]);
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

  /** What the log holds at start-up; the seq of its newest reading. */
  private async load(): Promise<number> {
    const meta = new Map<string, string>();
    for await (const [key, value] of this.store.iterator({ gte: 'm!', lt: 'm"' })) if (key !== 'm!keycheck') meta.set(key, text(value));
    this.cursors.load(meta);
    this.quarantined = Number(meta.get('m!quarantined') ?? 0);
    let lastSeq = Number(meta.get('m!lastSeq') ?? 0);
    for await (const [key, value] of this.store.iterator({ gte: 'c!', lt: 'c"' })) {
      try {
        const h = verifyChunk(value);
        if (key !== chunkKey(h.firstSeq)) throw new CorruptChunk('key does not match its seq range');
        this.chunks.add({ firstSeq: h.firstSeq, lastSeq: h.lastSeq, bytes: value.byteLength, committedAt: 0 });
        lastSeq = Math.max(lastSeq, h.lastSeq);
      } catch (err) {
        if (!(err instanceof CorruptChunk)) throw err;
        await this.quarantine(key, value, err.message);
      }
    }
    await this.letters.load(meta);
    return lastSeq;
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
    this.quarantined++;
    // Its range from the list, or (found at start-up) from its header when that is plausible.
    const upTo =
      this.chunks.find((c) => c.firstSeq === firstSeq)?.lastSeq ??
      (lastSeq !== undefined && lastSeq >= firstSeq && lastSeq - firstSeq < 100_000 ? lastSeq : firstSeq - 1);
    const lost = this.cursors.lostBy(firstSeq, upTo, 'corrupt chunk');
    await this.store.change([
      { type: 'put', key: `q!${key.slice(2)}!${Date.now()}`, value },
      { type: 'del', key },
      { type: 'put', key: 'm!quarantined', value: utf8(this.quarantined) },
      ...lost.ops,
    ]);
    this.cursors.countDrops(lost.totals);
    this.unlist(firstSeq);
    this.opts.logger.error({ firstSeq, lastSeq, reason }, 'corrupt log chunk quarantined');
  }

  /** A listed chunk LevelDB does not have: its readings are counted as dropped, and it leaves the list. */
  private async missing(info: ChunkInfo): Promise<void> {
    const lost = this.cursors.lostBy(info.firstSeq, info.lastSeq, 'chunk missing');
    this.unlist(info.firstSeq);
    await this.store.change(lost.ops);
    this.cursors.countDrops(lost.totals);
    this.opts.logger.error({ firstSeq: info.firstSeq, lastSeq: info.lastSeq }, 'log chunk missing');
  }

  private unlist(firstSeq: number): void {
    this.chunks.remove(firstSeq);
    this.forget(firstSeq);
  }

  /** A chunk gone from the list: out of the caches, and a checkpoint no longer writes it. */
  private forget(firstSeq: number): void {
    this.readers.forget(firstSeq);
    this.writer.forget(firstSeq);
  }

  // ---- writing ----

  /** Append a reading; `durable` settles when its chunk is on disk (fsync). */
  append(record: NewRecord): { seq: number; durable: Promise<void> } {
    return this.writer.append(record);
  }

  /** Hear readings (record lines, see encodeRecord): QoS 1 once on disk, QoS 0 as they come; returns the way to stop. */
  tap(listener: (lines: string[]) => void): () => void {
    return this.writer.tap(listener);
  }

  /** Bytes accepted but not yet durable: what backpressure decisions look at. */
  get pendingBytes(): number {
    return this.writer.pendingBytes;
  }

  /** False while commits fail: ingest holds every sender until they succeed again. */
  get accepting(): boolean {
    return this.writer.accepting;
  }

  status(): LogHealth {
    return this.writer.status();
  }

  /** While a reason is set (disk pressure at its reserve), commits wait: nothing but deletions is written. */
  holdWrites(reason: string | undefined): void {
    this.writer.holdWrites(reason);
  }

  /** Commit now what is pending (not waiting for the group commit's delay); resolves once it is on disk. */
  commitNow(): Promise<void> {
    return this.writer.commitNow();
  }

  get lastSeq(): number {
    return this.writer.lastSeq;
  }

  // ---- consumers ----

  /**
   * Make a consumer known. A new one starts at the oldest reading the log still holds (`oldest`:
   * those no longer held are counted as dropped for it) or after the newest durable one (`newest`).
   */
  registerConsumer(name: string, startAt: StartAt = 'oldest'): Promise<void> {
    return this.cursors.register(name, startAt, this.writer.lastSeq);
  }

  /** Where a consumer started (set when it was first registered); undefined for one from before this was kept. */
  startOf(name: string): ConsumerStart | undefined {
    return this.cursors.startOf(name);
  }

  /** Forget a consumer (a sink removed from the config), so it no longer holds chunks back. */
  dropConsumer(name: string): Promise<void> {
    return this.cursors.drop(name);
  }

  consumers(): string[] {
    return this.cursors.names();
  }

  cursor(consumer: string): number {
    return this.cursors.cursor(consumer);
  }

  /** Record that a consumer has everything up to seq; drop chunks all consumers passed. */
  commit(consumer: string, seq: number): Promise<void> {
    return this.cursors.commit(consumer, seq);
  }

  /** Readings that went before this consumer had them, per reason. */
  droppedFor(consumer: string): Record<string, number> {
    return this.cursors.dropCounts()[consumer] ?? {};
  }

  // ---- reading ----

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
  readTexts(consumer: string, afterSeq: number, max: number, peek = false): Promise<TextBatch | null> {
    return this.readers.readTexts(consumer, afterSeq, max, peek);
  }

  /**
   * Durable readings after afterSeq as whole chunks, still compressed, up to about `max` readings or
   * `maxBytes` of chunks (at least one chunk); null if none. For a consumer that decodes them elsewhere.
   */
  readChunks(consumer: string, afterSeq: number, max: number, maxBytes = Infinity): Promise<ChunkBatch | null> {
    return this.readers.readChunks(consumer, afterSeq, max, maxBytes);
  }

  /** When the reading with this seq became durable in this process (Date.now()); 0 if before it started, or gone. */
  committedAt(seq: number): number {
    const chunk = this.chunks.at(this.chunks.firstAfter(seq - 1));
    return chunk && chunk.firstSeq <= seq ? chunk.committedAt : 0;
  }

  /** Let every waitFor() return now (consumers stopping). */
  wakeAll(): void {
    for (const wake of this.waiters) wake();
    this.waiters.clear();
  }

  /** Resolves once a reading with seq > afterSeq is durable (or after `ms`). */
  waitFor(afterSeq: number, ms: number): Promise<void> {
    if (this.writer.lastSeq > afterSeq || this.writer.isClosed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.waiters.add(done);
    });
  }

  // ---- giving up under disk pressure ----

  /** Delete the oldest chunk (ending by `upTo`) some consumer has not confirmed and none holds; null if none. */
  dropOldestUnsent(reason: string, upTo = Infinity): Promise<ChunkDrop | null> {
    return this.relief.dropOldestUnsent(reason, upTo);
  }

  /** Delete up to `count` of the oldest dead letters; how many went. */
  dropOldestDeadLetters(count: number): Promise<number> {
    return this.letters.dropOldest(count);
  }

  /** Compact away what was deleted, so LevelDB gives the space back. */
  compact(what: 'chunks' | 'deadLetters'): Promise<void> {
    return this.relief.compact(what);
  }

  // ---- dead letters ----

  /** At maxCount or maxBytes of dead letters. */
  get deadLettersFull(): boolean {
    return this.letters.full;
  }

  /** For /health/ready: full dead letters are not ok, whichever the policy. */
  deadLetterStatus(): { state: string; since: string } {
    return this.letters.status();
  }

  /** Full, and new dead letters wait for room (whenFull: hold). */
  get holdingDeadLetters(): boolean {
    return this.letters.holding;
  }

  /** Keep a refused reading once there is room (whenFull: hold): resolves once it is on disk. */
  appendDeadLetterWhenRoom(refused: RefusedReading): Promise<void> {
    return this.letters.appendWhenRoom(refused);
  }

  /** Keep a refused reading, in the same commit stream; bounded: at the cap the oldest go first (whenFull: dropOldest). */
  appendDeadLetter(refused: RefusedReading): Promise<void> {
    return this.letters.append(refused);
  }

  /** Newest first: up to `limit` dead letters older than `beforeId` that `matches` takes. */
  deadLetters(limit = 100, beforeId?: number, matches?: (letter: DeadLetter) => boolean): Promise<DeadLetter[]> {
    return this.letters.list(limit, beforeId, matches);
  }

  deadLetter(id: number): Promise<DeadLetter | undefined> {
    return this.letters.get(id);
  }

  /** Delete these dead letters (replayed, or purged on request); how many there were. */
  removeDeadLetters(ids: number[]): Promise<number> {
    return this.letters.remove(ids);
  }

  /** Delete dead letters refused before `before`, and those past the first rule matching their topic. */
  pruneDeadLetters(before: number, rules: DeadLetterRule[] = []): Promise<number> {
    return this.letters.prune(before, rules);
  }

  stats(): LogStats {
    return {
      firstSeq: this.chunks.first?.firstSeq ?? this.writer.lastSeq + 1,
      lastSeq: this.writer.lastSeq,
      chunks: this.chunks.length,
      records: this.chunks.readings(),
      bytes: this.chunks.bytes(),
      pendingBytes: this.writer.pendingBytes,
      commits: this.writer.commits,
      quarantinedChunks: this.quarantined,
      deadLetters: this.letters.count,
      deadLettersDropped: this.letters.dropped,
      dropped: this.cursors.dropCounts(),
    };
  }

  /** Commit what is pending, then close. */
  async close(): Promise<void> {
    if (this.writer.isClosed) return;
    await this.writer.close();
    this.wakeAll();
    this.letters.wake(); // waiters then fail (the log is closed): their senders get no PUBACK
    await this.writer.end();
    await this.store.close();
  }
}
