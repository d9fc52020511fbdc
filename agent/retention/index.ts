// Retention: readings, rollups and dead letters older than the config keeps, and the oldest readings
// past the store's size limit, are deleted on a schedule, in small steps so that neither ingest nor
// the store's writes wait long. Every run is counted.
import { Cron } from 'croner';
import type { Logger } from '../lib/logger.js';
import type { Rollups, RollupPruneRule } from '../consume/rollups/index.js';
import type { LocalStore, PruneRule, PruneStep } from '../consume/store/types.js';
import { durationMs } from '../config/keys.js';
import type { RetentionConfig } from './config.js';

export type { RetentionConfig } from './config.js';

/** What retention needs of the log. */
export interface DeadLetterSource {
  pruneDeadLetters(before: number, rules?: { topics: string[]; except?: string[]; before?: number; maxBytes?: number }[]): Promise<number>;
}

export interface RetentionRun {
  at: string;
  storeDeleted: number;
  /** Of those, deleted to keep the store, or a rule's topics, below their size. */
  storeDeletedForSize: number;
  rollupsDeleted: number;
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
function pruneRules(config: RetentionConfig, now: number): (PruneRule & { maxBytes?: number })[] {
  return config.store.map((rule, i) => ({
    topics: rule.topics,
    except: config.store.slice(0, i).flatMap((r) => r.topics),
    before: rule.maxAge ? now - durationMs(rule.maxAge) : 0,
    maxBytes: rule.maxBytes,
  }));
}

/**
 * The rollup rules as prune calls, one per rule and bucket width: for each topic and width the first
 * rule that names both decides.
 */
function rollupRules(config: RetentionConfig, now: number): RollupPruneRule[] {
  return config.rollups.flatMap((rule, i) =>
    (rule.maxAge ? rule.buckets : []).map((bucket) => ({
      topics: rule.topics,
      widths: [durationMs(bucket)],
      before: now - durationMs(rule.maxAge!),
      except: config.rollups
        .slice(0, i)
        .filter((r) => r.buckets.includes(bucket))
        .flatMap((r) => r.topics),
    })),
  );
}

export function startRetention(opts: {
  config: RetentionConfig;
  store?: LocalStore;
  rollups?: Rollups;
  log: DeadLetterSource;
  logger: Logger;
  now?: () => number;
  /** False while the clock is known wrong: then nothing is deleted for its age (a clock years ahead would delete all), only for size. */
  clockTrusted?: () => boolean;
}): Retention {
  const { config, store, rollups, log, logger } = opts;
  const clock = opts.now ?? Date.now;
  let running: Promise<RetentionRun> | undefined;

  async function run(now: number): Promise<RetentionRun> {
    const byAge = opts.clockTrusted?.() ?? true;
    if (!byAge) logger.info({}, 'system clock unsynchronised: retention deletes nothing for its age until it is');
    const result: RetentionRun = {
      at: new Date(now).toISOString(),
      storeDeleted: 0,
      storeDeletedForSize: 0,
      rollupsDeleted: 0,
      deadLettersDeleted: 0,
      longestStallMs: 0,
      steps: 0,
    };
    /** Step until done (or `enough`), letting writes in between; returns what went. */
    const steps = async (step: () => Promise<PruneStep>, enough: () => Promise<boolean> = async () => false) => {
      let deleted = 0;
      for (;;) {
        const s = await step();
        result.steps++;
        deleted += s.deleted;
        result.longestStallMs = Math.max(result.longestStallMs, s.ms);
        if (s.done || (await enough())) return deleted;
        await new Promise((r) => setImmediate(r));
      }
    };
    if (store) {
      for (const rule of pruneRules(config, now)) {
        if (rule.before && byAge) result.storeDeleted += await steps(() => store.prune(rule, config.stepReadings));
        const { maxBytes } = rule;
        if (maxBytes && (await store.size(rule)) > maxBytes) {
          const deleted = await steps(
            () => store.prune({ ...rule, before: Number.MAX_SAFE_INTEGER }, config.stepReadings),
            async () => (await store.size(rule)) <= maxBytes,
          );
          result.storeDeletedForSize += deleted;
          result.storeDeleted += deleted;
        }
      }
      const max = config.storeMaxBytes;
      if (max > 0 && (await store.size()) > max) {
        const deleted = await steps(
          () => store.prune({ topics: ['#'], before: Number.MAX_SAFE_INTEGER }, config.stepReadings),
          async () => (await store.size()) <= max,
        );
        result.storeDeletedForSize += deleted;
        result.storeDeleted += deleted;
        await steps(() => store.prune({ topics: [], before: 0 }, config.stepReadings)); // give the rest of the freed space back
      }
    }
    if (rollups) {
      if (byAge)
        for (const rule of rollupRules(config, now)) result.rollupsDeleted += await steps(() => rollups.prune(rule, config.stepReadings));
      // By size: a rule's topics (less an earlier rule's), all its widths, the oldest buckets first.
      for (const [i, rule] of config.rollups.entries()) {
        const { maxBytes } = rule;
        if (!maxBytes) continue;
        const cover = { topics: rule.topics, except: config.rollups.slice(0, i).flatMap((r) => r.topics) };
        if ((await rollups.size(cover)) <= maxBytes) continue;
        const prune = { ...cover, widths: rule.buckets.map(durationMs), before: Number.MAX_SAFE_INTEGER };
        result.rollupsDeleted += await steps(
          () => rollups.prune(prune, config.stepReadings),
          async () => (await rollups.size(cover)) <= maxBytes,
        );
      }
    }
    const { maxAge, rules } = config.deadLetters;
    const deadLetterRules = rules.map((r, i) => ({
      topics: r.topics,
      except: rules.slice(0, i).flatMap((x) => x.topics),
      before: r.maxAge && byAge ? now - durationMs(r.maxAge) : undefined,
      maxBytes: r.maxBytes,
    }));
    result.deadLettersDeleted = await log.pruneDeadLetters(byAge ? now - durationMs(maxAge) : 0, deadLetterRules);
    result.longestStallMs = Math.round(result.longestStallMs * 10) / 10;
    if (result.storeDeleted || result.rollupsDeleted || result.deadLettersDeleted)
      logger.info({ ...result }, 'retention deleted what its rules no longer keep');
    return result;
  }

  const runOnce = (now = clock()) => (running ??= run(now).finally(() => (running = undefined)));
  const job = new Cron(config.schedule, { protect: true }, () => {
    runOnce().catch((err: Error) => logger.error({ err: err.message }, 'retention run failed; the next one will try again'));
  });
  return { runOnce, stop: () => job.stop() };
}
