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

export interface RetentionOptions {
  config: RetentionConfig;
  store?: LocalStore;
  rollups?: Rollups;
  log: DeadLetterSource;
  logger: Logger;
  now?: () => number;
  /** False while the clock is known wrong: then nothing is deleted for its age (a clock years ahead would delete all), only for size. */
  clockTrusted?: () => boolean;
}

/** Deletes what the rules no longer keep, on their schedule (croner), one run at a time. */
export class Retention {
  private readonly job: Cron;
  private running: Promise<RetentionRun> | undefined;

  constructor(private readonly opts: RetentionOptions) {
    this.job = new Cron(opts.config.schedule, { protect: true }, () => {
      this.runOnce().catch((err: Error) => opts.logger.error({ err: err.message }, 'retention run failed; the next one will try again'));
    });
  }

  /** One run now (tests inject `now`); a run under way is joined, not doubled. */
  runOnce(now = (this.opts.now ?? Date.now)()): Promise<RetentionRun> {
    return (this.running ??= this.run(now).finally(() => (this.running = undefined)));
  }

  stop(): void {
    this.job.stop();
  }

  private async run(now: number): Promise<RetentionRun> {
    const { logger } = this.opts;
    const byAge = this.opts.clockTrusted?.() ?? true;
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
    const steps = stepper(result);
    await this.pruneStore(now, byAge, result, steps);
    await this.pruneRollups(now, byAge, result, steps);
    result.deadLettersDeleted = await this.pruneDeadLetters(now, byAge);
    result.longestStallMs = Math.round(result.longestStallMs * 10) / 10;
    if (result.storeDeleted || result.rollupsDeleted || result.deadLettersDeleted)
      logger.info({ ...result }, 'retention deleted what its rules no longer keep');
    return result;
  }

  /** By each rule's age and size, then the whole store's size (then the freed space given back). */
  private async pruneStore(now: number, byAge: boolean, result: RetentionRun, steps: Stepper): Promise<void> {
    const { store, config } = this.opts;
    if (!store) return;
    const forSize = async (rule: PruneRule, under: () => Promise<boolean>) => {
      const deleted = await steps(() => store.prune({ ...rule, before: Number.MAX_SAFE_INTEGER }, config.stepReadings), under);
      result.storeDeletedForSize += deleted;
      result.storeDeleted += deleted;
    };
    for (const rule of pruneRules(config, now)) {
      if (rule.before && byAge) result.storeDeleted += await steps(() => store.prune(rule, config.stepReadings));
      const { maxBytes } = rule;
      if (maxBytes && (await store.size(rule)) > maxBytes) await forSize(rule, async () => (await store.size(rule)) <= maxBytes);
    }
    const max = config.storeMaxBytes;
    if (max > 0 && (await store.size()) > max) {
      await forSize({ topics: ['#'], before: 0 }, async () => (await store.size()) <= max);
      await steps(() => store.prune({ topics: [], before: 0 }, config.stepReadings)); // give the rest of the freed space back
    }
  }

  /** By age per rule and width; by size a rule's topics (less an earlier rule's), all its widths, the oldest buckets first. */
  private async pruneRollups(now: number, byAge: boolean, result: RetentionRun, steps: Stepper): Promise<void> {
    const { rollups, config } = this.opts;
    if (!rollups) return;
    if (byAge)
      for (const rule of rollupRules(config, now)) result.rollupsDeleted += await steps(() => rollups.prune(rule, config.stepReadings));
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

  private pruneDeadLetters(now: number, byAge: boolean): Promise<number> {
    const { maxAge, rules } = this.opts.config.deadLetters;
    const deadLetterRules = rules.map((r, i) => ({
      topics: r.topics,
      except: rules.slice(0, i).flatMap((x) => x.topics),
      before: r.maxAge && byAge ? now - durationMs(r.maxAge) : undefined,
      maxBytes: r.maxBytes,
    }));
    return this.opts.log.pruneDeadLetters(byAge ? now - durationMs(maxAge) : 0, deadLetterRules);
  }
}

type Stepper = (step: () => Promise<PruneStep>, enough?: () => Promise<boolean>) => Promise<number>;

/** Step until done (or `enough`), letting writes in between; returns what went, counting steps and stalls in `result`. */
function stepper(result: RetentionRun): Stepper {
  return async (step, enough = async () => false) => {
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
}
