// The dead letters: refused readings kept with their reasons, in the same commit stream as the
// readings (a refusal is acknowledged once on disk), bounded by count and bytes: when full, new
// ones wait for room (hold) or the oldest go (dropOldest).
import { coveredBy } from '../../mqtt-topic/topic.js';
import type { RefusedReading } from '../ingest/reading.js';
import { open, seal } from './chunk.js';
import { deadLetterKey, text, utf8, type Op } from './keys.js';
import type { LevelStore } from './level-store.js';
import type { DeadLetter } from './record.js';

export interface DeadLetterLimits {
  maxCount: number;
  maxBytes: number;
  /** The bytes of each refused payload kept. */
  payloadCapBytes: number;
  /** hold: new ones wait for room, their senders held; dropOldest: evicted, counted. */
  whenFull: 'hold' | 'dropOldest';
}

/** Dead letters on these topics (less `except`) are kept no older than `before` and no more than `maxBytes`. */
export interface DeadLetterRule {
  topics: string[];
  except?: string[];
  before?: number;
  maxBytes?: number;
}

/** How a dead letter joins the next commit: `build` runs once the commit takes it (the log is open). */
export type CommitDeadLetter = (build: () => { ops: Op[]; bytes: number }) => Promise<void>;

export class DeadLetters {
  private readonly sizes: { id: number; bytes: number }[] = [];
  private bytes = 0;
  private nextId = 1;
  private state = { state: 'ok', since: new Date().toISOString() };
  /** Dead letters waiting for room (whenFull: hold): woken when some are removed. */
  private waiters: (() => void)[] = [];
  /** Dead letters evicted (dropOldest) or dropped under disk pressure, ever (kept in m!dlDropped). */
  dropped = 0;

  constructor(
    private readonly limits: DeadLetterLimits,
    private readonly encryptionKey: Buffer | undefined,
    private readonly store: LevelStore,
    private readonly commit: CommitDeadLetter,
    private readonly isClosed: () => boolean,
  ) {}

  async load(meta: Map<string, string>): Promise<void> {
    this.dropped = Number(meta.get('m!dlDropped') ?? 0);
    for await (const [key, value] of this.store.iterator({ gte: 'd!', lt: 'd"' })) {
      const id = parseInt(key.slice(2), 16);
      this.sizes.push({ id, bytes: value.byteLength });
      this.bytes += value.byteLength;
      this.nextId = id + 1;
    }
  }

  get count(): number {
    return this.sizes.length;
  }

  /** At maxCount or maxBytes of dead letters. */
  get full(): boolean {
    return this.sizes.length >= this.limits.maxCount || this.bytes >= this.limits.maxBytes;
  }

  /** For /health/ready: full dead letters are not ok, whichever the policy. */
  status(): { state: string; since: string } {
    const { maxCount, whenFull } = this.limits;
    const full = `dead letters full (${this.sizes.length} of ${maxCount}, ingest.deadLetters)`;
    const state = !this.full
      ? 'ok'
      : whenFull === 'hold'
        ? `refusing: ${full}; refused readings wait, their senders held, until some are replayed or purged`
        : `dropping: ${full}; the oldest go`;
    if (state !== this.state.state) this.state = { state, since: new Date().toISOString() };
    return this.state;
  }

  /** Full, and new dead letters wait for room (whenFull: hold). */
  get holding(): boolean {
    return this.limits.whenFull === 'hold' && this.full;
  }

  /**
   * Keep a refused reading once there is room (whenFull: hold): resolves once it is on disk. The
   * check and the append happen together, so waiters woken at once do not overfill.
   */
  async appendWhenRoom(refused: RefusedReading): Promise<void> {
    while (this.holding && !this.isClosed()) await new Promise<void>((resolve) => this.waiters.push(resolve));
    return this.append(refused);
  }

  /** Keep a refused reading, in the same commit stream; bounded: at the cap the oldest go first (whenFull: dropOldest). */
  append(refused: RefusedReading): Promise<void> {
    return this.commit(() => {
      const id = this.nextId++;
      const kept = refused.payload.subarray(0, this.limits.payloadCapBytes);
      const entry: DeadLetter = {
        id,
        ...refused,
        payload: kept.toString('base64'),
        payloadBytes: refused.payload.length,
        truncated: kept.length < refused.payload.length,
      };
      const value = this.seal(id, utf8(JSON.stringify(entry)));
      const ops: Op[] = [{ type: 'put', key: deadLetterKey(id), value }];
      this.sizes.push({ id, bytes: value.length });
      this.bytes += value.length;
      const { maxCount, maxBytes, whenFull } = this.limits;
      while (whenFull === 'dropOldest' && (this.sizes.length > maxCount || (this.bytes > maxBytes && this.sizes.length > 1))) {
        const oldest = this.sizes.shift()!;
        this.bytes -= oldest.bytes;
        this.dropped++;
        ops.push({ type: 'del', key: deadLetterKey(oldest.id) });
      }
      ops.push({ type: 'put', key: 'm!dlDropped', value: utf8(this.dropped) });
      return { ops, bytes: value.length };
    });
  }

  /** Let every waiter look again (some were removed, or the log closes: then they fail). */
  wake(): void {
    for (const wake of this.waiters.splice(0)) wake();
  }

  /** Newest first: up to `limit` dead letters older than `beforeId` that `matches` takes. */
  async list(limit = 100, beforeId?: number, matches: (letter: DeadLetter) => boolean = () => true): Promise<DeadLetter[]> {
    const out: DeadLetter[] = [];
    if (limit <= 0) return out;
    const lt = beforeId === undefined ? 'd"' : deadLetterKey(beforeId);
    for await (const [key, value] of this.store.iterator({ gte: 'd!', lt, reverse: true })) {
      const letter = JSON.parse(text(this.open(key, value))) as DeadLetter;
      if (!matches(letter)) continue;
      out.push(letter);
      if (out.length >= limit) break;
    }
    return out;
  }

  async get(id: number): Promise<DeadLetter | undefined> {
    const key = deadLetterKey(id);
    const value = await this.store.get(key);
    return value === undefined ? undefined : (JSON.parse(text(this.open(key, value))) as DeadLetter);
  }

  /** Delete these dead letters (replayed, or purged on request); how many there were. */
  async remove(ids: number[]): Promise<number> {
    const gone = new Set(ids.filter((id) => this.sizes.some((d) => d.id === id)));
    if (!gone.size) return 0;
    await this.store.change([...gone].map((id): Op => ({ type: 'del', key: deadLetterKey(id) })));
    this.forgetSizes(gone);
    return gone.size;
  }

  /**
   * Delete dead letters refused before `before` (ms since the epoch), and those past a rule of the
   * first rule whose topics match theirs: refused before its `before`, or beyond its `maxBytes` counted
   * from the newest. How many went.
   */
  async prune(before: number, rules: DeadLetterRule[] = []): Promise<number> {
    const ops: Op[] = [];
    const gone = new Set<number>();
    const used = rules.map(() => 0);
    const matchers = rules.map((r) => coveredBy(r));
    for await (const [key, value] of this.store.iterator({ gte: 'd!', lt: 'd"', reverse: true })) {
      const letter = JSON.parse(text(this.open(key, value))) as DeadLetter;
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
    await this.store.change(ops);
    this.forgetSizes(gone);
    return ops.length;
  }

  /** Delete up to `count` of the oldest dead letters (disk pressure); how many went. */
  async dropOldest(count: number): Promise<number> {
    const gone = this.sizes.slice(0, count);
    if (!gone.length) return 0;
    this.dropped += gone.length;
    await this.store.change([
      ...gone.map((d): Op => ({ type: 'del', key: deadLetterKey(d.id) })),
      { type: 'put', key: 'm!dlDropped', value: utf8(this.dropped) },
    ]);
    this.sizes.splice(0, gone.length);
    for (const d of gone) this.bytes -= d.bytes;
    this.wake();
    return gone.length;
  }

  private forgetSizes(gone: Set<number>): void {
    for (const d of this.sizes) if (gone.has(d.id)) this.bytes -= d.bytes;
    this.sizes.splice(0, this.sizes.length, ...this.sizes.filter((d) => !gone.has(d.id)));
    this.wake();
  }

  /** Dead letters hold payloads too: sealed like the chunks when the log is encrypted. */
  private seal(id: number, plain: Buffer): Buffer {
    return this.encryptionKey ? seal(plain, this.encryptionKey, utf8(deadLetterKey(id))) : plain;
  }

  private open(dbKey: string, value: Uint8Array): Uint8Array {
    // One written before encryption was configured is plain JSON.
    return this.encryptionKey && value[0] !== 0x7b ? open(Buffer.from(value), this.encryptionKey, utf8(dbKey)) : value;
  }
}
