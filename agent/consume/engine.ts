// The one engine that runs every consumer of the durable log, the local store and each sink alike
// (as Vector runs its sinks): read from a durable cursor, gather by records and age (a consumer's
// read caps the bytes), keep a window of batches in flight while the next is prepared, move the
// cursor in order once each is done, and meet faults with one policy: an error that belongs to
// readings halves the batch until they stand alone and dead-letters them; an error of the moment is
// retried with backoff and full jitter until it passes.
import type { StartAt, RefusedReading } from '../log/index.js';
import { redactUrlsIn } from '../config/redact-url.js';
import { Backoff } from '../lib/backoff.js';
import { RecordFault, STUCK_AFTER_MS, type ConsumerHealth, type ConsumerState } from '../lib/faults.js';

export type { StartAt } from '../log/index.js';
import { settlesFirst } from '../lib/settles-first.js';
import { onFirstAbort, sleep } from '../lib/sleep.js';

/** What the engine needs of the durable log. */
export interface EngineLog {
  /** Make a consumer known (no-op if it is); a new one starts where `startAt` says. */
  registerConsumer(name: string, startAt?: StartAt): Promise<void>;
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
  /**
   * When readings are few, the age grows up to this, so that a batch holds about maxRecords
   * (fewer, larger writes to the SD card); flush() and caughtUp() cut it short for a reader.
   */
  idleAgeMs?: number;
  /** Batches handed over at once (done in any order; the cursor still moves in order). */
  window: number;
  retry: { initialMs: number; maxMs: number };
  /** While true the consumer takes nothing (the clock is unsynchronised: readings' times are not final yet). */
  hold?: () => boolean;
  /** Where the consumer starts when the log does not know it yet (default: oldest). */
  startAt?: StartAt;
  logger: { info(o: object, m: string): void; warn(o: object, m: string): void; error(o: object, m: string): void };
}

/**
 * A second lane beside the main one (a sink's live lane, sending new readings while the main lane
 * drains a backlog): where the main lane stops for it, and how the two become one again.
 */
export interface SecondLane<B extends Batch> {
  /** The main lane sends nothing past this seq. */
  limit(): number;
  /** The main lane reached the limit with its cursor here: end the second lane; returns the seq both have done (the engine commits it). */
  reached(cursor: number): Promise<number>;
  /** The main lane handed this batch over (the second lane may open). */
  gathered(batch: B): void;
}

/**
 * Readings up to `lastSeq` that the log no longer holds (dropped under disk pressure, quarantined,
 * deleted before the consumer was added; each counted for it when it went): passed over, not delivered.
 */
export interface Gone {
  readonly gone: true;
  readonly lastSeq: number;
}

export interface EngineStatus extends ConsumerHealth {
  name: string;
  /** Durable readings after the cursor. */
  lagRecords: number;
  failures: number;
  deadLettered: number;
  /** Taking nothing until the clock synchronises (EngineOptions.hold). */
  waitingForClock: boolean;
  /** Times the loop was found turning without progress and backed off (a bug; see the log). */
  spins: number;
}

/** How often a held consumer looks whether it may go on. */
const HOLD_RECHECK_MS = 1000;
/** How often the engine measures the rate readings come at (for idleAgeMs). */
const RATE_WINDOW_MS = 5000;
/** Turns of a consumer's loop without progress (no batch, no wait) before the engine calls it a spin. */
const SPIN_TURNS = 3;

export const isGone = (batch: Batch | Gone): batch is Gone => 'gone' in batch;

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
  /** Readings per second reaching the log, measured over the last RATE_WINDOW_MS or more. */
  private readonly rate = { seq: 0, at: 0, perSec: Infinity };
  /** flush() was asked: the next batch goes without waiting for its age. */
  private flushing = false;
  /** Ends the wait for a batch's age (flush). */
  private nudge = new AbortController();
  /** Set by every wait of gather(): a turn of the loop that neither waited nor got a batch made no progress. */
  private waited = false;
  /** Backs off a loop that turns without progress (a bug in a reader): one consumer slows, not the agent. */
  private readonly spin = { turns: 0, backoff: new Backoff(100, 30_000), count: 0 };

  constructor(
    private readonly log: EngineLog,
    private readonly delivery: Delivery<B>,
    private readonly opts: EngineOptions,
    /** None: the main lane reads on for ever. */
    private readonly lane?: SecondLane<B>,
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
    await this.log.registerConsumer(this.opts.name, this.opts.startAt);
    this.loop = this.keepRunning();
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.loop;
    await this.prefetch?.catch(() => {});
  }

  /** Write what waits now rather than at its age (a reader wants recent readings). */
  flush(): void {
    if (this.log.lastSeq <= this.log.cursor(this.opts.name)) return;
    this.flushing = true;
    this.nudge.abort();
    this.nudge = new AbortController();
  }

  /** Resolves true once everything durable up to `seq` is done (false after `timeoutMs`); flushes first. */
  async caughtUp(seq: number, timeoutMs = 10_000): Promise<boolean> {
    this.flush();
    const deadline = Date.now() + timeoutMs;
    while (this.log.cursor(this.opts.name) < seq) {
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 10));
    }
    return true;
  }

  status(): EngineStatus {
    if (this.health.state === 'retrying' && this.failingSince && Date.now() - this.failingSince >= STUCK_AFTER_MS) this.enter('stuck');
    return {
      name: this.opts.name,
      ...this.health,
      lagRecords: Math.max(0, this.log.lastSeq - this.log.cursor(this.opts.name)),
      failures: this.failures,
      deadLettered: this.deadLettered,
      waitingForClock: this.held,
      spins: this.spin.count,
    };
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
    return sleep(ms, signal, this.waking.signal);
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
    const out: { lastSeq: number; done: Promise<boolean> }[] = [];
    const limit = () => this.lane?.limit() ?? Infinity;
    let cursor = this.log.cursor(this.opts.name);
    let gathered = cursor;
    let next = this.prepareNext(gathered, limit());
    try {
      while (!this.signal.aborted) {
        if (out.length && (out.length >= this.opts.window || gathered >= limit() || (await settlesFirst(out[0].done, next)))) {
          const { lastSeq, done } = out.shift()!;
          if (!(await done)) break;
          cursor = lastSeq;
          await this.log.commit(this.opts.name, cursor);
          continue;
        }
        if (this.lane && cursor >= limit()) {
          await next;
          const merged = await this.lane.reached(cursor);
          if (merged > cursor) await this.log.commit(this.opts.name, merged);
          cursor = gathered = merged;
          next = this.prepareNext(gathered, limit());
          continue;
        }
        const batch = await next;
        const moved = batch !== null && batch.lastSeq > gathered;
        if (batch && moved) {
          gathered = batch.lastSeq;
          out.push({ lastSeq: batch.lastSeq, done: isGone(batch) ? Promise.resolve(true) : this.handOver(batch) });
        }
        await this.progressed(moved);
        next = this.prepareNext(gathered, limit());
      }
    } finally {
      await Promise.allSettled(out.map((o) => o.done));
    }
  }

  private handOver(batch: B): Promise<boolean> {
    this.lane?.gathered(batch);
    const done = this.deliver(batch, this.signal);
    done.catch(() => {}); // awaited in turn; a failure before then must not go unhandled
    return done;
  }

  /**
   * After each turn of a consumer's loop: one that neither moved past a reading nor waited made no
   * progress. A few in a row are a spin (a reader answering with nothing new while the log says there
   * is more): said once, the consumer `stuck`, and backed off, so one consumer slows and the agent does not.
   */
  private async progressed(moved: boolean): Promise<void> {
    const waited = this.waited;
    this.waited = false;
    if (moved || waited) {
      if (this.spin.turns >= SPIN_TURNS) this.enter('ok');
      this.spin.turns = 0;
      this.spin.backoff.reset();
      return;
    }
    if (++this.spin.turns < SPIN_TURNS) return;
    const waitMs = this.spin.backoff.next();
    if (this.spin.turns === SPIN_TURNS) {
      this.spin.count++;
      this.enter(
        'stuck',
        new Error(
          `its loop turned ${SPIN_TURNS} times without progress (the log says readings wait after seq ${this.log.cursor(this.opts.name)}, a read found none); backing off`,
        ),
        waitMs,
      );
    }
    await sleep(waitMs, this.signal);
  }

  /** Gather the next batch while earlier ones are out; stop() waits for it. */
  private prepareNext(after: number, limit: number): Promise<B | Gone | null> {
    const next = this.gather(after, limit, this.signal);
    next.catch(() => {}); // awaited in turn; if the lane fails first, its rejection must not go unhandled
    this.prefetch = next;
    return next;
  }

  /**
   * The next batch after `after` (none past `limit`): as soon as maxRecords wait or the limit is in
   * reach, else once the first waiting reading was committed maxAgeMs ago. Null when nothing came
   * within a second (the caller looks around and asks again); Gone when what waits is no longer there.
   */
  async gather(after: number, limit: number, signal: AbortSignal): Promise<B | Gone | null> {
    const { maxRecords } = this.opts;
    for (let idle = true; !signal.aborted;) {
      this.held = this.opts.hold?.() ?? false;
      if (this.held) {
        await sleep(HOLD_RECHECK_MS, signal);
        this.waited = true;
        return null;
      }
      const head = Math.min(this.log.lastSeq, limit);
      if (head <= after) {
        this.flushing = false;
        if (!idle) return null;
        await this.waitFor(after, 1000, signal);
        idle = false;
        continue;
      }
      // Full: maxRecords wait, the limit is in reach, or the last read stopped here on its byte cap.
      const full = head - after >= maxRecords || head >= limit || this.cutAt.has(after) || this.flushing;
      const left = full ? 0 : this.log.committedAt(after + 1) + this.age() - Date.now();
      if (left <= 0) return this.read(after, limit, head);
      await this.waitFor(this.log.lastSeq, left, signal, this.nudge.signal); // the next commit (count again), the age, or a flush
    }
    return null;
  }

  /** How long a batch's first reading may wait: maxAgeMs, or longer up to idleAgeMs when readings are few. */
  private age(): number {
    const { maxAgeMs, idleAgeMs, maxRecords } = this.opts;
    if (!idleAgeMs || idleAgeMs <= maxAgeMs) return maxAgeMs;
    const now = Date.now();
    if (!this.rate.at) Object.assign(this.rate, { seq: this.log.lastSeq, at: now });
    else if (now - this.rate.at >= RATE_WINDOW_MS)
      Object.assign(this.rate, {
        perSec: ((this.log.lastSeq - this.rate.seq) * 1000) / (now - this.rate.at),
        seq: this.log.lastSeq,
        at: now,
      });
    return Math.min(idleAgeMs, Math.max(maxAgeMs, (maxRecords / this.rate.perSec) * 1000));
  }

  private async read(after: number, limit: number, head: number): Promise<B | Gone | null> {
    this.cutAt.delete(after);
    this.flushing = false;
    const batch = await this.delivery.read(after, this.opts.maxRecords, limit);
    // The log says readings wait up to head, and none after `after` is still there: pass over them.
    if (!batch) return this.gone(after, head);
    // Cut short of what waited, and not by count: by the consumer's byte cap. What is left is a batch's worth.
    if (batch && batch.lastSeq < head && batch.lastSeq - after < this.opts.maxRecords) {
      if (this.cutAt.size > 16) this.cutAt.clear();
      this.cutAt.add(batch.lastSeq);
    }
    return batch;
  }

  private gone(after: number, head: number): Gone {
    this.opts.logger.warn(
      { consumer: this.opts.name, from: after + 1, to: head },
      'readings no longer in the log passed over (dropped under disk pressure or before this consumer was added; counted in sync status)',
    );
    return { gone: true, lastSeq: head };
  }

  /** Until a reading after `after` is durable, `ms` pass, or one of `signals` stops the wait. */
  private waitFor(after: number, ms: number, ...signals: AbortSignal[]): Promise<void> {
    this.waited = true;
    if (signals.some((s) => s.aborted)) return Promise.resolve();
    return new Promise((resolve) => {
      const off = onFirstAbort(signals, () => resolve());
      void this.log.waitFor(after, ms).then(() => {
        off();
        resolve();
      });
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
    this.opts.logger.warn(
      { consumer: this.opts.name, seq: refused.seq, topic: refused.topic, reason: fault.message },
      'consumer refused a reading; dead-lettered',
    );
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

  private enter(state: ConsumerState, failure?: Error, retryInMs?: number): void {
    const at = new Date().toISOString();
    // A client's error may quote its URL, credentials and all (fetch does): shown and logged masked.
    const err = failure && { message: redactUrlsIn(failure.message) };
    const changed = state !== this.health.state || (err !== undefined && err.message !== this.health.lastError?.message);
    if (state === 'ok') this.failingSince = 0;
    if (err) this.health.lastError = { message: err.message, at };
    if (!changed) return;
    const was = this.health.state;
    if (state !== was) this.health = { ...this.health, state, since: at };
    // Logged when the state or the error changes, not on every retry.
    if (state === 'ok') this.opts.logger.info({ consumer: this.opts.name, was }, 'consumer ok again');
    else
      this.opts.logger[state === 'retrying' ? 'warn' : 'error'](
        { consumer: this.opts.name, state, err: err?.message, retryInMs },
        `consumer ${state}`,
      );
  }
}
