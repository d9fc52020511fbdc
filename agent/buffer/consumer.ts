// A named consumer of the durable log: read a batch of chunks after its cursor, hand it over, commit
// once handled, repeat. Up to `inFlight` batches may be handed over before the first is done (a
// store whose worker queues them); the cursor still moves in order. A batch refused for what some
// of its records hold is halved until they stand alone: they go to the dead letters, the rest on.
import type { Logger } from '../log.js';
import { Backoff } from './backoff.js';
import type { ChunkBatch } from './chunk-batch.js';
import { RecordFault, STUCK_AFTER_FAILURES, type ConsumerHealth, type ConsumerState } from './faults.js';
import type { DurableLog } from './log.js';
import { splitRecord } from './record.js';
import { settlesFirst } from './settles-first.js';

export interface ConsumerStatus extends ConsumerHealth {
  name: string;
  /** Readings durable in the log and not yet handled. */
  lagRecords: number;
  deadLettered: number;
}

export interface Consumer {
  /** Resolves when everything durable up to `seq` has been handled. */
  caughtUp(seq: number, timeoutMs?: number): Promise<boolean>;
  status(): ConsumerStatus;
  stop(): Promise<void>;
}

interface Handling {
  batch: ChunkBatch;
  done: Promise<void>;
}

export async function startConsumer(
  log: DurableLog,
  name: string,
  handle: (batch: ChunkBatch) => Promise<void> | void,
  opts: {
    batch: number;
    /**
     * Fewer, larger writes: until `batch` readings wait, hold the first waiting one up to this long
     * after its commit (as Telegraf's flush interval and batch size do).
     */
    gatherMs?: number;
    /** Batches handed over at once (default 1). */
    inFlight?: number;
    logger: Logger;
  },
): Promise<Consumer> {
  await log.registerConsumer(name);
  const window = opts.inFlight ?? 1;
  let running = true;
  const backoff = new Backoff(250, 30_000);
  const health: ConsumerHealth = { state: 'ok', since: new Date().toISOString() };
  let deadLettered = 0;
  let wake: (() => void) | undefined;
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => (clearTimeout(timer), resolve());
    });
  const full = (after: number) => log.lastSeq - after >= opts.batch;
  /** Whether to read now: a batch is full, or the first waiting reading has waited gatherMs since its commit. */
  async function gathered(after: number): Promise<boolean> {
    if (!opts.gatherMs || full(after)) return true;
    const left = log.committedAt(after + 1) + opts.gatherMs - Date.now();
    if (left <= 0) return true;
    await log.waitFor(log.lastSeq, left); // wakes at the next commit (to count again), or when the time is up
    return false;
  }
  function enter(state: ConsumerState, err?: Error): void {
    if (err) health.lastError = { message: err.message, at: new Date().toISOString() };
    if (state === health.state) return;
    const was = health.state;
    health.state = state;
    health.since = new Date().toISOString();
    // Logged on a change of state, not on every retry.
    if (state === 'ok') opts.logger.info({ consumer: name, was }, 'log consumer ok again');
    else opts.logger[state === 'stuck' ? 'error' : 'warn']({ consumer: name, state, err: err?.message }, `log consumer ${state}`);
  }
  /** Dead-letter the one reading of `batch`, with the consumer's name and its error. */
  async function deadLetter(batch: ChunkBatch, fault: RecordFault): Promise<void> {
    const [line] = batch.decode().lines;
    const { head, payloadJson } = splitRecord(line);
    deadLettered++;
    opts.logger.warn({ consumer: name, seq: head.seq, topic: head.topic, reason: fault.message }, 'consumer refused a reading; dead-lettered');
    await log.appendDeadLetter({ time: Date.now(), topic: head.topic, clientId: head.clientId, payload: Buffer.from(payloadJson), reasons: [{ path: '', message: fault.message }], consumer: name, seq: head.seq });
  }
  /** Halve a refused batch until each refused reading stands alone; errors of the moment go up. */
  async function isolate(batch: ChunkBatch, fault: RecordFault): Promise<void> {
    if (batch.count === 1) return deadLetter(batch, fault);
    const mid = batch.firstSeq + (batch.count >> 1) - 1;
    for (const part of [batch.slice(batch.firstSeq, mid), batch.slice(mid + 1, batch.lastSeq)]) {
      try {
        await handle(part);
      } catch (err) {
        if (!(err instanceof RecordFault)) throw err;
        await isolate(part, err);
      }
    }
  }
  const handling: Handling[] = [];
  /** Wait for the oldest batch handed over, then move the cursor past it. */
  async function settle(): Promise<void> {
    const { batch, done } = handling[0];
    try {
      await done;
    } catch (err) {
      if (!(err instanceof RecordFault)) throw err;
      await isolate(batch, err);
    }
    handling.shift();
    await log.commit(name, batch.lastSeq);
  }
  const loop = (async () => {
    let after = log.cursor(name);
    while (running) {
      try {
        // Hand over another batch only while a full one waits; else finish what is out (or wait for more).
        if (handling.length && !(handling.length < window && full(after))) {
          if (handling.length >= window || (await settlesFirst(handling[0].done, log.waitFor(log.lastSeq, 1000)))) {
            await settle();
            backoff.reset();
            enter('ok');
          }
          continue;
        }
        if (log.lastSeq <= after) {
          await log.waitFor(after, 1000);
          continue;
        }
        if (!(await gathered(after))) continue;
        const batch = await log.readChunks(name, after, opts.batch);
        if (!batch) {
          await log.waitFor(after, 1000);
          continue;
        }
        const done = Promise.resolve().then(() => handle(batch));
        done.catch(() => {}); // awaited in settle()
        handling.push({ batch, done });
        after = batch.lastSeq;
      } catch (err) {
        // An error of the moment: start again from the durable cursor once it may have passed.
        await Promise.allSettled(handling.splice(0).map((h) => h.done));
        after = log.cursor(name);
        const waitMs = backoff.next();
        enter(backoff.failures >= STUCK_AFTER_FAILURES ? 'stuck' : 'retrying', err as Error);
        opts.logger.debug({ consumer: name, err: (err as Error).message, retryInMs: waitMs }, 'log consumer failed; will retry');
        await pause(waitMs);
      }
    }
    while (handling.length) await settle().catch(() => handling.splice(0));
  })();
  return {
    async caughtUp(seq, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (log.cursor(name) < seq) {
        if (Date.now() > deadline) return false;
        await new Promise((r) => setTimeout(r, 10));
      }
      return true;
    },
    status: () => ({ name, ...health, lagRecords: Math.max(0, log.lastSeq - log.cursor(name)), deadLettered }),
    async stop() {
      running = false;
      log.wakeAll();
      wake?.();
      await loop;
    },
  };
}
