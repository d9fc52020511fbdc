// Disk pressure: the free space of the data directory's filesystem, read every few seconds against
// watermarks. Below `act` the agent gives up what is worth least first, a step at a time, until free
// space is back above it: (a) local-store readings every sink has, (b) the oldest dead letters,
// (c) local-store readings whose rollups are kept (the log still holds them for the sinks), (d) the
// oldest log chunks not yet sent, counted per consumer. Below `critical` ingest takes nothing new;
// below `reserve` the agent writes nothing but deletions.
import { statfs } from 'node:fs/promises';
import type { Logger } from '../lib/logger.js';
import type { LocalStore } from '../consume/store/types.js';
import { freeBytes, type DiskConfig } from './config.js';

export type PressureLevel = 'ok' | 'warn' | 'act' | 'critical' | 'reserve';

export interface Watermarks {
  warn: number;
  act: number;
  critical: number;
  reserve: number;
}

/** What each step gave up since start. */
export interface Relief {
  /** (a) store readings every sink had. */
  storeForwarded: number;
  /** (b) dead letters. */
  deadLetters: number;
  /** (c) store readings their rollups cover. */
  storeRolledUp: number;
  /** (d) log chunks, and their readings per consumer that had not confirmed them. */
  logChunks: number;
  logReadings: Record<string, number>;
}

/** Store readings per relief step: the journal of a larger one could fill what little space is left. */
const RELIEF_STEP_READINGS = 1000;

export interface PressureStatus {
  level: PressureLevel;
  since: string;
  freeBytes: number;
  totalBytes: number;
  /** In bytes of free space, for this filesystem. */
  watermarks: Watermarks;
  relief: Relief;
}

/** What relief needs of the log. */
export interface PressureLog {
  dropOldestDeadLetters(count: number): Promise<number>;
  readonly lastSeq: number;
  stats(): { deadLetters: number };
  dropOldestUnsent(
    reason: string,
    upTo?: number,
  ): Promise<{ firstSeq: number; lastSeq: number; bytes: number; perConsumer: Record<string, number> } | null>;
  compact(what: 'chunks' | 'deadLetters'): Promise<void>;
  /** Hold commits (writes nothing but deletions) while a reason is set. */
  holdWrites(reason: string | undefined): void;
}

export interface PressureOptions {
  dir: string;
  config: DiskConfig;
  /** Readings per store pruning step. */
  stepReadings: number;
  /** The local store, once open. */
  store(): LocalStore | undefined;
  /** Seq up to which every sink confirmed the readings (the store may let them go). */
  forwardedThrough(): number;
  /** Seq up to which the rollups hold the readings; undefined without rollups. */
  rolledUpThrough(): number | undefined;
  log: PressureLog;
  logger: Logger;
}

export const DROP_REASON = 'disk pressure';
const ORDER: PressureLevel[] = ['ok', 'warn', 'act', 'critical', 'reserve'];
const MiB = 1024 * 1024;
/** Room deletions need: LevelDB flushes its write buffer and writes compacted files before removing the old. */
export const RESERVE_NEEDED = 32 * MiB;
/** Free space is read again after the agent wrote this share of the room between two marks (and at least every intervalSec). */
const CHECK_SHARE_OF_GAP = 1 / 8;
const CHECK_BYTES_MIN = 256 * 1024;
const CHECK_BYTES_MAX = 8 * MiB;
/** Dead letters dropped per step. */
const DEAD_LETTER_STEP = 100;

/**
 * The watermarks in bytes for this filesystem (in order: the config's load checked them against it,
 * markOrderProblems). A reserve above 0 but smaller than what LevelDB's own deletions write is
 * raised to that, and the marks above it with it; 0 turns it off.
 */
export function watermarks(config: DiskConfig, total: number): Watermarks {
  const [warn, act, critical, set] = [config.warn, config.act, config.critical, config.reserve].map((m) => freeBytes(m, total));
  const reserve = set > 0 ? Math.max(set, RESERVE_NEEDED) : 0;
  const raisedCritical = Math.max(critical, reserve);
  const raisedAct = Math.max(act, raisedCritical);
  return { warn: Math.max(warn, raisedAct), act: raisedAct, critical: raisedCritical, reserve };
}

/** What `config check` and the start say when the reserve was raised; undefined when it was not. */
export function reserveRaised(config: DiskConfig, total: number): string | undefined {
  const set = freeBytes(config.reserve, total);
  if (set <= 0 || set >= RESERVE_NEEDED) return undefined;
  return `retention.disk.reserve (${config.reserve}: ${(set / MiB).toFixed(1)} MiB of this filesystem) is raised to 32 MiB, what LevelDB's own deletions write (a 4 MB buffer flushed, files compacted into new ones before the old go), and the marks above it with it; 0B turns the reserve off`;
}

function levelOf(free: number, marks: Watermarks): PressureLevel {
  if (free < marks.reserve) return 'reserve';
  if (free < marks.critical) return 'critical';
  if (free < marks.act) return 'act';
  if (free < marks.warn) return 'warn';
  return 'ok';
}

/** Leaving `critical` needs free space above `act`, leaving the reserve above `critical`: no flapping at a mark. */
export function levelAfter(was: PressureLevel, free: number, marks: Watermarks): PressureLevel {
  const now = levelOf(free, marks);
  if (ORDER.indexOf(now) >= ORDER.indexOf(was)) return now;
  if (was === 'reserve' && free < marks.critical) return 'reserve';
  if ((was === 'reserve' || was === 'critical') && free < marks.act) return 'critical';
  return now;
}

/** A share of the smallest room between two marks that differ, within bounds. */
function checkBytes(marks: Watermarks): number {
  const levels = [marks.warn, marks.act, marks.critical, marks.reserve, 0];
  const gaps = levels
    .slice(1)
    .map((m, i) => levels[i] - m)
    .filter((g) => g > 0);
  const gap = gaps.length ? Math.min(...gaps) : CHECK_BYTES_MAX;
  return Math.min(CHECK_BYTES_MAX, Math.max(CHECK_BYTES_MIN, gap * CHECK_SHARE_OF_GAP));
}

const atLeast = (level: PressureLevel, than: PressureLevel) => ORDER.indexOf(level) >= ORDER.indexOf(than);

export class DiskPressure {
  private state: PressureStatus;
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<PressureStatus> | undefined;
  private measuring: Promise<void> | undefined;
  private readonly waiters = new Set<() => void>();
  /** Said once per level that nothing more can be deleted. */
  private saidExhausted = false;
  /** Said once that the reserve was raised to what deletions write. */
  private saidRaised = false;
  /** Bytes written since free space was last read, and how many make the next read due. */
  private writtenSinceCheck = 0;
  private checkEvery = CHECK_BYTES_MIN;

  constructor(private readonly opts: PressureOptions) {
    this.state = {
      level: 'ok',
      since: new Date().toISOString(),
      freeBytes: 0,
      totalBytes: 0,
      watermarks: { warn: 0, act: 0, critical: 0, reserve: 0 },
      relief: { storeForwarded: 0, deadLetters: 0, storeRolledUp: 0, logChunks: 0, logReadings: {} },
    };
  }

  /** Check now, then every intervalSec. */
  async start(): Promise<void> {
    await this.check();
    this.timer = setInterval(() => void this.check(), this.opts.config.intervalSec * 1000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.open(); // nothing waits on a monitor that is gone
  }

  status(): PressureStatus {
    return structuredClone(this.state);
  }

  /** False below `critical`: ingest takes nothing new. */
  get accepting(): boolean {
    return !atLeast(this.state.level, 'critical');
  }

  /** Resolves once ingest may take readings again. */
  accepts(): Promise<void> {
    return this.accepting ? Promise.resolve() : new Promise((resolve) => this.waiters.add(resolve));
  }

  /** Why nothing but deletions may be written now; undefined when writes may go on. */
  get writesHeld(): string | undefined {
    return this.state.level === 'reserve' ? 'disk reserve reached' : undefined;
  }

  /** Read free space, and give up what must go; one check at a time. */
  check(): Promise<PressureStatus> {
    return (this.checking ??= this.run().finally(() => (this.checking = undefined)));
  }

  /** Never rejects: a step that fails (LevelDB compacting on a nearly full disk, say) is tried again next check. */
  private async run(): Promise<PressureStatus> {
    try {
      await this.measure();
      if (atLeast(this.state.level, 'act')) await this.relieve();
    } catch (err) {
      this.opts.logger.error(
        { err: (err as Error).message, level: this.state.level },
        'disk pressure: a step failed; trying again at the next check',
      );
    }
    return this.status();
  }

  private async measure(): Promise<void> {
    this.writtenSinceCheck = 0;
    const fs = await statfs(this.opts.dir);
    const total = fs.blocks * fs.bsize;
    const free = fs.bavail * fs.bsize;
    const marks = watermarks(this.opts.config, total);
    Object.assign(this.state, { freeBytes: free, totalBytes: total, watermarks: marks });
    this.checkEvery = checkBytes(marks);
    const raised = !this.saidRaised && reserveRaised(this.opts.config, total);
    if (raised) {
      this.saidRaised = true;
      this.opts.logger.warn({ reserve: marks.reserve, totalBytes: total }, raised);
    }
    const level = levelAfter(this.state.level, free, marks);
    if (level !== this.state.level) this.changed(level);
  }

  /**
   * The agent wrote `bytes` (readings and dead letters as committed to the log, the store's blocks
   * as it writes them): free space is read again every so many, so that no rate the disk can write
   * skips a watermark between two timed checks, even while the store catches up with ingest stopped.
   */
  wrote(bytes: number): void {
    this.writtenSinceCheck += bytes;
    if (this.writtenSinceCheck >= this.checkEvery) void this.readAgain();
  }

  /**
   * Before the agent writes `bytes` outside the log (the store's blocks): they count as `wrote`
   * does, free space is read first when they make a read due, and the answer is why the write must
   * wait (the reserve reached), or undefined.
   */
  async admit(bytes: number): Promise<string | undefined> {
    this.writtenSinceCheck += bytes;
    if (this.writtenSinceCheck >= this.checkEvery) await this.readAgain();
    return this.writesHeld;
  }

  /**
   * Free space read now, apart from a relief: a relief can take seconds (a deletion on a busy
   * thread) while the writes go on, and they must still meet every watermark. A relief the level
   * calls for then starts on its own.
   */
  private async readAgain(): Promise<void> {
    this.measuring ??= this.measure()
      .catch((err: Error) => this.opts.logger.error({ err: err.message }, 'disk pressure: reading free space failed'))
      .finally(() => (this.measuring = undefined));
    await this.measuring;
    if (atLeast(this.state.level, 'act')) void this.check(); // joins a relief already running
  }

  private changed(level: PressureLevel): void {
    const was = this.state.level;
    this.saidExhausted = false;
    this.state.level = level;
    this.state.since = new Date().toISOString();
    const fields = { level, was, freeBytes: this.state.freeBytes, totalBytes: this.state.totalBytes, watermarks: this.state.watermarks };
    const said: Record<PressureLevel, string> = {
      ok: 'disk space ok',
      warn: 'disk space low',
      act: 'disk space low: deleting what is worth least until it is back above the act watermark',
      critical: 'disk space critical: ingest takes no new readings until it is back above the critical watermark',
      reserve: 'disk space at the reserve: nothing but deletions is written',
    };
    if (atLeast(level, 'act')) this.opts.logger.error(fields, said[level]);
    else if (level === 'warn') this.opts.logger.warn(fields, said[level]);
    else this.opts.logger.info(fields, said[level]);
    this.opts.log.holdWrites(this.writesHeld);
    if (this.accepting) this.open();
  }

  private open(): void {
    for (const resolve of this.waiters) resolve();
    this.waiters.clear();
  }

  /**
   * Steps (a) to (d), each until free space is back above `act` or it has nothing more to give of
   * what was there when the run began (readings that come meanwhile wait for the next check).
   */
  private async relieve(): Promise<void> {
    const before = structuredClone(this.state.relief);
    const upTo = this.opts.log.lastSeq;
    const deadLetters = this.opts.log.stats().deadLetters;
    const steps = [
      () => this.pruneStore('storeForwarded', this.opts.forwardedThrough()),
      () => this.dropDeadLetters(deadLetters),
      () => this.pruneStore('storeRolledUp', this.opts.rolledUpThrough()),
      () => this.dropChunks(upTo),
    ];
    for (const step of steps) {
      await step();
      if (!atLeast(this.state.level, 'act')) break;
    }
    this.report(before);
  }

  /** A deletion's rollback journal takes space while it runs: small steps when there is little. */
  private async pruneStore(counter: 'storeForwarded' | 'storeRolledUp', throughSeq: number | undefined): Promise<void> {
    const store = this.opts.store();
    if (!store || throughSeq === undefined || throughSeq <= 0) return;
    for (;;) {
      const step = await store.prune(
        { topics: ['#'], before: Number.MAX_SAFE_INTEGER, throughSeq },
        Math.min(this.opts.stepReadings, RELIEF_STEP_READINGS),
      );
      this.state.relief[counter] += step.deleted;
      await this.measure();
      if (!atLeast(this.state.level, 'act') || step.done) return;
    }
  }

  private async dropDeadLetters(atMost: number): Promise<void> {
    for (let left = atMost; left > 0;) {
      const gone = await this.opts.log.dropOldestDeadLetters(Math.min(DEAD_LETTER_STEP, left));
      left -= gone;
      this.state.relief.deadLetters += gone;
      if (!gone) return;
      await this.opts.log.compact('deadLetters');
      await this.measure();
      if (!atLeast(this.state.level, 'act')) return;
    }
  }

  /**
   * Chunks go oldest first until their bytes make up what free space lacks below `act`; then LevelDB
   * compacts them away (one compaction for many small chunks) and free space is read again.
   */
  private async dropChunks(upTo: number): Promise<void> {
    for (;;) {
      const lacking = this.state.watermarks.act - this.state.freeBytes;
      let bytes = 0;
      while (bytes < lacking) {
        const drop = await this.opts.log.dropOldestUnsent(DROP_REASON, upTo);
        if (!drop) break;
        bytes += drop.bytes;
        const relief = this.state.relief;
        relief.logChunks++;
        for (const [consumer, n] of Object.entries(drop.perConsumer))
          relief.logReadings[consumer] = (relief.logReadings[consumer] ?? 0) + n;
      }
      if (!bytes) return;
      await this.opts.log.compact('chunks');
      await this.measure();
      if (!atLeast(this.state.level, 'act')) return;
    }
  }

  /** One log line for a relief run: what each step gave up. */
  private report(before: Relief): void {
    const r = this.state.relief;
    const readings: Record<string, number> = {};
    for (const [c, n] of Object.entries(r.logReadings))
      if (n !== (before.logReadings[c] ?? 0)) readings[c] = n - (before.logReadings[c] ?? 0);
    const gave = {
      storeForwarded: r.storeForwarded - before.storeForwarded,
      deadLetters: r.deadLetters - before.deadLetters,
      storeRolledUp: r.storeRolledUp - before.storeRolledUp,
      logChunks: r.logChunks - before.logChunks,
      unsentReadingsDropped: readings,
    };
    const fields = { ...gave, level: this.state.level, freeBytes: this.state.freeBytes, act: this.state.watermarks.act };
    if (gave.logChunks)
      this.opts.logger.error(fields, 'disk pressure: unsent readings dropped from the log (per consumer); see sync status');
    else if (gave.storeForwarded || gave.deadLetters || gave.storeRolledUp)
      this.opts.logger.warn(fields, 'disk pressure: local copies deleted to keep free space above the act watermark');
    else if (atLeast(this.state.level, 'act') && !this.saidExhausted) {
      this.saidExhausted = true;
      this.opts.logger.error(fields, 'disk pressure: nothing left the agent may delete; the disk is filled by something else');
    }
  }
}
