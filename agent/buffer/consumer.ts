// A named consumer of the durable log: read a batch of chunks after its cursor, hand it over, commit
// once handled, repeat. Up to `inFlight` batches may be handed over before the first is done (a
// store whose worker queues them); the cursor still moves in order.
import type { Logger } from '../log.js';
import type { DurableLog } from './log.js';
import type { ChunkBatch } from './chunk-batch.js';
import { settlesFirst } from './settles-first.js';

export interface Consumer {
  /** Resolves when everything durable up to `seq` has been handled. */
  caughtUp(seq: number, timeoutMs?: number): Promise<boolean>;
  stop(): Promise<void>;
}

interface Handling {
  lastSeq: number;
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
  let backoffMs = 0;
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
  const handling: Handling[] = [];
  /** Wait for the oldest batch handed over, then move the cursor past it. */
  async function settle(): Promise<void> {
    const { lastSeq, done } = handling[0];
    await done;
    handling.shift();
    await log.commit(name, lastSeq);
  }
  const loop = (async () => {
    let after = log.cursor(name);
    while (running) {
      try {
        // Hand over another batch only while a full one waits; else finish what is out (or wait for more).
        if (handling.length && !(handling.length < window && full(after))) {
          if (handling.length >= window || (await settlesFirst(handling[0].done, log.waitFor(log.lastSeq, 1000)))) {
            await settle();
            backoffMs = 0;
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
        handling.push({ lastSeq: batch.lastSeq, done });
        after = batch.lastSeq;
      } catch (err) {
        await Promise.allSettled(handling.splice(0).map((h) => h.done));
        after = log.cursor(name);
        backoffMs = Math.min(30_000, Math.max(250, backoffMs * 2));
        opts.logger.error({ consumer: name, err: (err as Error).message, retryInMs: backoffMs }, 'log consumer failed; will retry');
        await pause(backoffMs);
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
    async stop() {
      running = false;
      log.wakeAll();
      wake?.();
      await loop;
    },
  };
}
