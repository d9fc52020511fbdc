// The log's consumers: where each has read to (a durable cursor), where it started, what it has in
// its hands (read, not yet confirmed: never dropped), and what went before it had it (counted per
// reason). A chunk is deleted once every consumer passed it.
import type { Logger } from '../lib/logger.js';
import type { ChunkList } from './chunk-list.js';
import { chunkKey, utf8, type Op } from './keys.js';
import type { LevelStore } from './level-store.js';

/** Where a consumer new to the log starts: the oldest reading it still holds, or the next one to come. */
export type StartAt = 'oldest' | 'newest';

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

/** Readings going from the log, counted for each consumer that had not confirmed them. */
export interface Loss {
  /** The writes that keep the counts. */
  ops: Op[];
  /** The new totals, by `consumer\u0000reason` (counted once written). */
  totals: Map<string, number>;
  perConsumer: Record<string, number>;
}

export class Cursors {
  private readonly cursors = new Map<string, number>();
  /** Where each consumer started (kept in m!start!...). */
  private readonly starts = new Map<string, ConsumerStart>();
  /** `consumer\u0000reason` -> readings dropped (kept in m!drop!...). */
  private readonly drops = new Map<string, number>();
  /** Seq ranges each consumer has read and not yet confirmed: in its hands, never dropped. */
  private readonly held = new Map<string, { from: number; to: number }[]>();
  /** Reads under way, by the seq they read after: the chunks past it may be in their hands already. */
  private readonly reading = new Map<symbol, number>();

  constructor(
    private readonly store: LevelStore,
    private readonly chunks: ChunkList,
    /** Drops a deleted chunk from the readers' caches. */
    private readonly forget: (firstSeq: number) => void,
    private readonly logger: Logger,
  ) {}

  /** From the log's metadata (m!... keys) at start-up. */
  load(meta: Map<string, string>): void {
    for (const [key, value] of meta) if (key.startsWith('m!cursor!')) this.cursors.set(key.slice(9), Number(value));
    for (const [key, value] of meta) if (key.startsWith('m!drop!')) this.drops.set(key.slice(7), Number(value));
    for (const [key, value] of meta) if (key.startsWith('m!start!')) this.starts.set(key.slice(8), JSON.parse(value) as ConsumerStart);
  }

  /**
   * Make a consumer known. A new one starts at the oldest reading the log still holds (`oldest`:
   * those no longer held are counted as dropped for it, `deleted before it was added`) or after the
   * newest durable one (`newest`: nothing counted, it asked for nothing older).
   */
  async register(name: string, startAt: StartAt, durableSeq: number): Promise<void> {
    if (this.cursors.has(name)) return;
    const cursor = startAt === 'newest' || !this.chunks.length ? durableSeq : this.chunks.first!.firstSeq - 1;
    const gone = startAt === 'newest' ? 0 : durableSeq - this.chunks.readings();
    const start = { startAt, seq: cursor, at: new Date().toISOString() };
    const ops: Op[] = [
      { type: 'put', key: `m!cursor!${name}`, value: utf8(cursor) },
      { type: 'put', key: `m!start!${name}`, value: utf8(JSON.stringify(start)) },
    ];
    const key = `${name}\u0000${DELETED_BEFORE_ADDED}`;
    if (gone > 0) ops.push({ type: 'put', key: `m!drop!${key}`, value: utf8(gone) });
    // Known before the write: a commit meanwhile must not collect the chunks it starts at.
    this.cursors.set(name, cursor);
    this.starts.set(name, start);
    await this.store.change(ops);
    if (gone > 0) {
      this.drops.set(key, gone);
      this.logger.warn(
        { consumer: name, startAt, from: cursor + 1, gone },
        'new log consumer: readings the log no longer held are counted as dropped for it; it starts at the oldest one still held',
      );
    } else {
      this.logger.info({ consumer: name, startAt, from: cursor + 1 }, 'new log consumer');
    }
  }

  startOf(name: string): ConsumerStart | undefined {
    return this.starts.get(name);
  }

  /** Forget a consumer (a sink removed from the config), so it no longer holds chunks back. */
  async drop(name: string): Promise<void> {
    if (!this.cursors.delete(name)) return;
    this.starts.delete(name);
    // Its drop counts go with it: a consumer added again under the name starts its own.
    const counts = [...this.drops.keys()].filter((key) => key.startsWith(`${name}\u0000`));
    for (const key of counts) this.drops.delete(key);
    await this.store.change([
      { type: 'del', key: `m!cursor!${name}` },
      { type: 'del', key: `m!start!${name}` },
      ...counts.map((key): Op => ({ type: 'del', key: `m!drop!${key}` })),
    ]);
    await this.collect([]);
  }

  names(): string[] {
    return [...this.cursors.keys()];
  }

  cursor(consumer: string): number {
    const c = this.cursors.get(consumer);
    if (c === undefined) throw new Error(`unknown log consumer ${consumer}`);
    return c;
  }

  /** The lowest cursor: a chunk past it is unsent to someone (no consumer: every chunk). */
  floor(): number {
    return Math.min(...this.cursors.values());
  }

  /** Record that a consumer has everything up to seq; delete the chunks all consumers passed. */
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
  async collect(ops: Op[] = []): Promise<void> {
    const floor = this.cursors.size ? this.floor() : 0; // no consumer: keep everything
    for (const gone of this.chunks.shiftUpTo(floor)) {
      this.forget(gone.firstSeq);
      ops.push({ type: 'del', key: chunkKey(gone.firstSeq) });
    }
    if (ops.length) await this.store.change(ops);
  }

  /** While a read runs, no chunk it may take is dropped under pressure (it holds them only once it returns). */
  async whileReading<T>(afterSeq: number, read: () => Promise<T>): Promise<T> {
    const token = Symbol();
    this.reading.set(token, afterSeq);
    try {
      return await read();
    } finally {
      this.reading.delete(token);
    }
  }

  /** A consumer read from..to: those readings are in its hands until it confirms them. */
  hold(consumer: string, from: number, to: number): void {
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

  isHeld(firstSeq: number, lastSeq: number): boolean {
    for (const ranges of this.held.values()) if (ranges.some((r) => r.from <= lastSeq && r.to >= firstSeq)) return true;
    for (const after of this.reading.values()) if (lastSeq > after) return true;
    return false;
  }

  /**
   * The readings firstSeq..lastSeq going from the log, counted for each consumer that had not
   * confirmed them. Every reading a consumer never gets is counted here, when it goes: a reader
   * that later finds it gone passes over it without counting again.
   */
  lostBy(firstSeq: number, lastSeq: number, reason: string): Loss {
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

  /** The totals of a loss, once its writes succeeded. */
  countDrops(totals: Map<string, number>): void {
    for (const [key, total] of totals) this.drops.set(key, total);
  }

  /** Readings that went before each consumer had them, per reason. */
  dropCounts(): Record<string, Record<string, number>> {
    const out: Record<string, Record<string, number>> = {};
    for (const [key, n] of this.drops) {
      const [consumer, reason] = key.split('\u0000');
      (out[consumer] ??= {})[reason] = n;
    }
    return out;
  }
}
