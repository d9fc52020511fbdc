// Retention: readings and dead letters older than the config keeps are deleted on a schedule, in
// small steps so that neither ingest nor the store's writes wait long. Every run is counted.
import { Cron } from 'croner';
import type { Logger } from '../log.js';
import type { LocalStore, PruneRule } from '../store/types.js';
import { durationMs, type RetentionConfig } from './config.js';

export type { RetentionConfig } from './config.js';

/** What retention needs of the log. */
export interface DeadLetterSource {
  pruneDeadLetters(before: number): Promise<number>;
}

export interface RetentionRun {
  at: string;
  storeDeleted: number;
  deadLettersDeleted: number;
  /** The longest a single step held the store, ms. */
  longestStallMs: number;
  steps: number;
}

export interface Retention {
  /** One run now (tests inject `now`). */
  runOnce(now?: number): Promise<RetentionRun>;
  stop(): void;
}

/**
 * The rules as prune calls: each rule covers its patterns less what an earlier rule already took
 * (the first match decides), so a reading is judged by one rule only.
 */
function pruneRules(config: RetentionConfig, now: number): PruneRule[] {
  return config.store.map((rule, i) => ({ topics: rule.topics, before: now - durationMs(rule.maxAge), except: config.store.slice(0, i).flatMap((r) => r.topics) }));
}

export function startRetention(opts: { config: RetentionConfig; store?: LocalStore; log: DeadLetterSource; logger: Logger; now?: () => number }): Retention {
  const { config, store, log, logger } = opts;
  const clock = opts.now ?? Date.now;
  let running: Promise<RetentionRun> | undefined;

  async function run(now: number): Promise<RetentionRun> {
    const result: RetentionRun = { at: new Date(now).toISOString(), storeDeleted: 0, deadLettersDeleted: 0, longestStallMs: 0, steps: 0 };
    if (store) {
      for (const rule of pruneRules(config, now)) {
        for (;;) {
          const step = await store.prune(rule, config.stepReadings);
          result.steps++;
          result.storeDeleted += step.deleted;
          result.longestStallMs = Math.max(result.longestStallMs, step.ms);
          if (step.done) break;
          await new Promise((r) => setImmediate(r)); // let writes in between steps
        }
      }
    }
    result.deadLettersDeleted = await log.pruneDeadLetters(now - durationMs(config.deadLetters.maxAge));
    result.longestStallMs = Math.round(result.longestStallMs * 10) / 10;
    if (result.storeDeleted || result.deadLettersDeleted) logger.info({ ...result }, 'retention deleted what its rules no longer keep');
    return result;
  }

  const runOnce = (now = clock()) => (running ??= run(now).finally(() => (running = undefined)));
  const job = new Cron(config.schedule, { protect: true }, () => {
    runOnce().catch((err: Error) => logger.error({ err: err.message }, 'retention run failed; the next one will try again'));
  });
  return { runOnce, stop: () => job.stop() };
}
