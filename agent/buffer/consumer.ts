// A named consumer of the durable log: read a batch of chunks after its cursor, hand it over, commit, repeat.
import type { Logger } from '../log.js';
import type { DurableLog } from './log.js';
import type { ChunkBatch } from './chunk-batch.js';

export interface Consumer {
  /** Resolves when everything durable up to `seq` has been handled. */
  caughtUp(seq: number, timeoutMs?: number): Promise<boolean>;
  stop(): Promise<void>;
}

export async function startConsumer(
  log: DurableLog,
  name: string,
  handle: (batch: ChunkBatch) => Promise<void> | void,
  opts: {
    batch: number;
    /**
     * Fewer, larger writes: until `batch` readings wait, hold the first waiting one up to this long
     * (as Telegraf's flush interval and batch size do).
     */
    gatherMs?: number;
    logger: Logger;
  },
): Promise<Consumer> {
  await log.registerConsumer(name);
  let running = true;
  let backoffMs = 0;
  let wake: (() => void) | undefined;
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => (clearTimeout(timer), resolve());
    });
  /** When the consumer first saw readings waiting that were fewer than a batch. */
  let waitingSince: number | undefined;
  /** Whether to wait for more before reading: until a batch is full or the first waiting one is gatherMs old. */
  async function gathered(after: number): Promise<boolean> {
    if (!opts.gatherMs || log.lastSeq - after >= opts.batch) return true;
    waitingSince ??= Date.now();
    const left = waitingSince + opts.gatherMs - Date.now();
    if (left <= 0) return true;
    await log.waitFor(log.lastSeq, left); // wakes at the next commit (to count again), or when the time is up
    return false;
  }
  const loop = (async () => {
    while (running) {
      const after = log.cursor(name);
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
      try {
        await handle(batch);
        await log.commit(name, batch.lastSeq);
        backoffMs = 0;
        waitingSince = undefined;
      } catch (err) {
        backoffMs = Math.min(30_000, Math.max(250, backoffMs * 2));
        opts.logger.error({ consumer: name, err: (err as Error).message, retryInMs: backoffMs }, 'log consumer failed; will retry');
        await pause(backoffMs);
      }
    }
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
