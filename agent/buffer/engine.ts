// The one engine that runs every consumer of the durable log, the local store and each sink alike
// (as Vector runs its sinks): read from a durable cursor, gather by records and age (a consumer's
// read caps the bytes), keep a window of batches in flight while the next is prepared, move the
// cursor in order once each is done, and meet faults with one policy: an error that belongs to
// readings halves the batch until they stand alone and dead-letters them; an error of the moment is
// retried with backoff and full jitter until it passes.
import { Backoff } from './backoff.js';
import { RecordFault, STUCK_AFTER_MS, type ConsumerHealth, type ConsumerState } from './faults.js';
import type { RefusedReading } from './record.js';
import { settlesFirst } from './settles-first.js';
import { sleep } from './sleep.js';

/** What the engine needs of the durable log. */
export interface EngineLog {
  registerConsumer(name: string): Promise<void>;
  cursor(name: string): number;
  commit(consumer: string, seq: number): Promise<void>;
  readonly lastSeq: number;
  /** When the reading with this seq was committed (Date.now()); 0 for one from before this process. */
  committedAt(seq: number): number;
  waitFor(afterSeq: number, ms: number): Promise<void>;
  appendDeadLetter(refused: RefusedReading): Promise<void>;
}

/** A consumer's batch, as the engine sees it. */
export interface Batch {
  /** The last reading it covers: the cursor moves here once it is done. */
  readonly lastSeq: number;
  /** Readings to hand over (a topic filter may leave fewer than it covers). */
  readonly count: number;
}

/** What a consumer does with the readings; the engine does the rest. */
export interface Delivery<B extends Batch> {
  /** Up to `max` durable readings after `after`, none past `limit`, as this consumer takes them (it may cap their bytes); null if none. */
  read(after: number, max: number, limit: number): Promise<B | null>;
  /** Resolves once the batch is done (stored, confirmed); throws RecordFault for what readings hold, anything else is of the moment. */
  write(batch: B, signal: AbortSignal): Promise<void>;
  /** The two halves of a batch of more than one reading. */
  split(batch: B): Promise<[B, B]>;
  /** The refused reading of a batch of one, as its dead letter holds it. */
  refused(batch: B): RefusedReading;
  /** How a failure of the moment is met; default: `retrying`, after the next backoff. */
  failure?(err: Error, backoffMs: number): { state: 'retrying' | 'down'; waitMs: number };
}

export interface EngineOptions {
  /** The consumer's name: its cursor in the log, and on its dead letters. */
  name: string;
  /** Most readings in a batch. */
  maxRecords: number;
  /** Until maxRecords wait, a batch goes once its first reading was committed this long ago. */
  maxAgeMs: number;
  /** Batches handed over at once (done in any order; the cursor still moves in order). */
  window: number;
  retry: { initialMs: number; maxMs: number };
  /** While true the consumer takes nothing (the clock is unsynchronised: readings' times are not final yet). */
  hold?: () => boolean;
  logger: { info(o: object, m: string): void; warn(o: object, m: string): void; error(o: object, m: string): void };
}

/** Where the main lane stops for another (a sink's live lane), and what happens when it gets there. */
export interface LaneLimit {
  /** The main lane sends nothing past this seq. */
  limit(): number;
  /** The main lane reached the limit with its cursor here; returns the cursor to go on from. */
  reached(cursor: number): Promise<number>;
}

export interface EngineStatus extends ConsumerHealth {
  name: string;
  /** Durable readings after the cursor. */
  lagRecords: number;
  failures: number;
  deadLettered: number;
  /** Taking nothing until the clock synchronises (EngineOptions.hold). */
  waitingForClock: boolean;
}

/** How often a held consumer looks whether it may go on. */
const HOLD_RECHECK_MS = 1000;

export class ConsumerEngine<B extends Batch> {
  private readonly stopping = new AbortController();
  /** Ends the current wait before a retry (retryNow). */
  private waking = new AbortController();
  private health: ConsumerHealth = { state: 'ok', since: new Date().toISOString() };
  /** When the current run of failures began; 0 while ok. */
  private failingSince = 0;
  private failures = 0;
  private deadLettered = 0;
  /** The batch being prepared while others are out; stop() waits for it. */
  private prefetch: Promise<unknown> | undefined;
  private loop: Promise<void> | undefined;
  /** The last gather found the consumer held. */
  private held = false;
  /** Where a read stopped on the consumer's byte cap: the next batch from there is full already. */
  private readonly cutAt = new Set<number>();

  constructor(
    private readonly log: EngineLog,
    private readonly delivery: Delivery<B>,
    private readonly opts: EngineOptions,
    /** Hooks for a second lane beside the main one (none: the main lane reads on for ever). */
    private readonly lane?: LaneLimit & { gathered?(batch: B): void },
  ) {}

  get name(): string {
    return this.opts.name;
  }

  get signal(): AbortSignal {
    return this.stopping.signal;
  }

  get state(): ConsumerState {
    return this.health.state;
  }

  async start(): Promise<void> {
    await this.log.registerConsumer(this.opts.name);
    this.loop = this.keepRunning();
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.loop;
    await this.prefetch?.catch(() => {});
  }

  /** Resolves true once everything durable up to `seq` is done (false after `timeoutMs`). */
  async caughtUp(seq: number, timeoutMs = 10_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.log.cursor(this.opts.name) < seq) {
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 10));
    }
    return true;
  }

  status(): EngineStatus {
    if (this.health.state === 'retrying' && this.failingSince && Date.now() - this.failingSince >= STUCK_AFTER_MS) this.enter('stuck');
    return { name: this.opts.name, ...this.health, lagRecords: Math.max(0, this.log.lastSeq - this.log.cursor(this.opts.name)), failures: this.failures, deadLettered: this.deadLettered, waitingForClock: this.held };
  }

  /** An error of the engine's own (the log failing a cursor commit) restarts it from the durable cursor. */
  private async keepRunning(): Promise<void> {
    const backoff = new Backoff(this.opts.retry.initialMs, this.opts.retry.maxMs);
    while (!this.signal.aborted) {
      try {
        await this.run();
      } catch (err) {
        await this.wait(this.failed(err as Error, backoff.next()), this.signal);
      }
    }
  }

  /** Wait before the next try: until `ms` pass, the signal stops it, or retryNow. */
  private wait(ms: number, signal: AbortSignal): Promise<void> {
    return sleep(ms, AbortSignal.any([signal, this.waking.signal]));
  }

  /** Try again now instead of at the end of the current wait (an operator fixed the cause); false if nothing was waiting. */
  retryNow(): boolean {
    const waiting = this.health.state !== 'ok';
    this.waking.abort();
    this.waking = new AbortController();
    return waiting;
  }

  /**
   * The main lane: prepare the next batch while earlier ones are out; up to `window` are out at
   * once, and the cursor moves past each once it and every batch before it are done.
   */
  private async run(): Promise<void> {
    const out: { batch: B; done: Promise<boolean> }[] = [];
    const limit = () => this.lane?.limit() ?? Infinity;
    let cursor = this.log.cursor(this.opts.name);
    let gathered = cursor;
    let next = this.prepareNext(gathered, limit());
    try {
      while (!this.signal.aborted) {
        if (out.length && (out.length >= this.opts.window || gathered >= limit() || (await settlesFirst(out[0].done, next)))) {
          const { batch, done } = out.shift()!;
          if (!(await done)) break;
          cursor = batch.lastSeq;
          await this.log.commit(this.opts.name, cursor);
          continue;
        }
        if (this.lane && cursor >= limit()) {
          await next;
          cursor = gathered = await this.lane.reached(cursor);
          next = this.prepareNext(gathered, limit());
          continue;
        }
        const batch = await next;
        if (batch) {
          gathered = batch.lastSeq;
          this.lane?.gathered?.(batch);
          const done = this.deliver(batch, this.signal);
          done.catch(() => {}); // awaited in turn; a failure before then must not go unhandled
          out.push({ batch, done });
        }
        next = this.prepareNext(gathered, limit());
      }
    } finally {
      await Promise.allSettled(out.map((o) => o.done));
    }
  }

  /** Gather the next batch while earlier ones are out; stop() waits for it. */
  private prepareNext(after: number, limit: number): Promise<B | null> {
    const next = this.gather(after, limit, this.signal);
    next.catch(() => {}); // awaited in turn; if the lane fails first, its rejection must not go unhandled
    this.prefetch = next;
    return next;
  }

  /**
   * The next batch after `after` (none past `limit`): as soon as maxRecords wait or the limit is in
   * reach, else once the first waiting reading was committed maxAgeMs ago. Null when nothing came
   * within a second (the caller looks around and asks again).
   */
  async gather(after: number, limit: number, signal: AbortSignal): Promise<B | null> {
    const { maxRecords, maxAgeMs } = this.opts;
    for (let idle = true; !signal.aborted; ) {
      this.held = this.opts.hold?.() ?? false;
      if (this.held) {
        await sleep(HOLD_RECHECK_MS, signal);
        return null;
      }
      const head = Math.min(this.log.lastSeq, limit);
      if (head <= after) {
        if (!idle) return null;
        await this.waitFor(after, 1000, signal);
        idle = false;
        continue;
      }
      // Full: maxRecords wait, the limit is in reach, or the last read stopped here on its byte cap.
      const full = head - after >= maxRecords || head >= limit || this.cutAt.has(after);
      const left = full ? 0 : this.log.committedAt(after + 1) + maxAgeMs - Date.now();
      if (left <= 0) return this.read(after, limit, head);
      await this.waitFor(this.log.lastSeq, left, signal); // the next commit (count again), or the age
    }
    return null;
  }

  private async read(after: number, limit: number, head: number): Promise<B | null> {
    this.cutAt.delete(after);
    const batch = await this.delivery.read(after, this.opts.maxRecords, limit);
    // Cut short of what waited, and not by count: by the consumer's byte cap. What is left is a batch's worth.
    if (batch && batch.lastSeq < head && batch.lastSeq - after < this.opts.maxRecords) {
      if (this.cutAt.size > 16) this.cutAt.clear();
      this.cutAt.add(batch.lastSeq);
    }
    return batch;
  }

  /** Until a reading after `after` is durable, `ms` pass, or `signal` stops the lane. */
  private waitFor(after: number, ms: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        signal.removeEventListener('abort', done);
        resolve();
      };
      signal.addEventListener('abort', done, { once: true });
      void this.log.waitFor(after, ms).then(done);
    });
  }

  /**
   * Hand a batch over until it is done (true), or until `signal` stops the lane (false: it goes
   * again from the cursor next time). Readings refused for what they hold are isolated.
   */
  async deliver(batch: B, signal: AbortSignal): Promise<boolean> {
    if (batch.count === 0) return true;
    const backoff = new Backoff(this.opts.retry.initialMs, this.opts.retry.maxMs);
    while (!signal.aborted) {
      try {
        await this.delivery.write(batch, signal);
        this.enter('ok');
        return true;
      } catch (err) {
        if (signal.aborted) break; // stopped mid-write: not a failure; it goes again next start
        if (err instanceof RecordFault) return this.isolate(batch, err, signal);
        await this.wait(this.failed(err as Error, backoff.next()), signal);
      }
    }
    return false;
  }

  /** Halve a refused batch until each refused reading stands alone; those go to the dead letters. */
  private async isolate(batch: B, fault: RecordFault, signal: AbortSignal): Promise<boolean> {
    if (batch.count > 1) {
      const [a, b] = await this.delivery.split(batch);
      return (await this.deliver(a, signal)) && this.deliver(b, signal);
    }
    const refused = this.delivery.refused(batch);
    this.deadLettered++;
    this.opts.logger.warn({ consumer: this.opts.name, seq: refused.seq, topic: refused.topic, reason: fault.message }, 'consumer refused a reading; dead-lettered');
    await this.log.appendDeadLetter({ ...refused, reasons: [{ path: '', message: fault.message }], consumer: this.opts.name });
    return true;
  }

  /** Count a failure of the moment and say so once per change of state; the wait before the next try. */
  private failed(err: Error, backoffMs: number): number {
    this.failures++;
    this.failingSince ||= Date.now();
    const { state, waitMs } = this.delivery.failure?.(err, backoffMs) ?? { state: 'retrying' as const, waitMs: backoffMs };
    const stuck = state === 'retrying' && Date.now() - this.failingSince >= STUCK_AFTER_MS;
    this.enter(stuck ? 'stuck' : state, err, waitMs);
    return waitMs;
  }

  private enter(state: ConsumerState, err?: Error, retryInMs?: number): void {
    const at = new Date().toISOString();
    const changed = state !== this.health.state || (err !== undefined && err.message !== this.health.lastError?.message);
    if (state === 'ok') this.failingSince = 0;
    if (err) this.health.lastError = { message: err.message, at };
    if (!changed) return;
    const was = this.health.state;
    if (state !== was) this.health = { ...this.health, state, since: at };
    // Logged when the state or the error changes, not on every retry.
    if (state === 'ok') this.opts.logger.info({ consumer: this.opts.name, was }, 'consumer ok again');
    else this.opts.logger[state === 'retrying' ? 'warn' : 'error']({ consumer: this.opts.name, state, err: err?.message, retryInMs }, `consumer ${state}`);
  }
}
