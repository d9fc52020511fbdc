// The wall clock, and how far to trust it. A Pi has no real-time clock: until NTP synchronises it,
// the wall clock may be hours or years off, and then it jumps. A reading received meanwhile keeps,
// besides its wall time, its time on the boot's monotonic clock (which never jumps) and the boot's
// id. Once the clock synchronises, wall - monotonic of that boot is known, and each such reading's
// time is corrected by it before a consumer of the log takes it (consumers wait for that, a while).
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ClockOffsets } from './clock-correction.js';

export type { ClockOffsets } from './clock-correction.js';

/** How the agent learns whether the clock is synchronised. */
export type ClockSyncSource = 'auto' | 'timesyncd' | 'timedatectl' | 'none';

/** What the agent reads of the machine's clocks (a test injects its own). */
export interface ClockSource {
  /** Wall clock, ms since the epoch. */
  wallMs(): number;
  /** The boot's monotonic clock (CLOCK_MONOTONIC), ms: shared by every process of one boot. */
  monoMs(): number;
  /** Identifies the boot a monotonic time belongs to. */
  readonly bootId: string;
  /** Whether the wall clock is synchronised; undefined when nothing here can tell. */
  synced(): boolean | undefined;
  readonly via: string;
}

/** How ingest stamps a reading. */
export interface ClockStamp {
  receivedAt: number;
  clockSynced: boolean;
  /** Set while the clock is known unsynchronised: what a later correction needs. */
  boot?: string;
  mono?: number;
}

export interface ClockStatus {
  synced: boolean | null;
  via: string;
  /** Whether the log's consumers are waiting for the clock to synchronise. */
  holding: boolean;
  /** Boots whose offset is known (their readings can be corrected). */
  knownBoots: number;
}

const TIMESYNC_DIR = '/run/systemd/timesync';
const RECHECK_MS = 10_000;
/** Offsets of this many past boots are kept: enough for a backlog that outlives a few reboots. */
const KEPT_BOOTS = 16;

/** How long the boot has run, from the kernel's monotonic clock (libuv's hrtime is CLOCK_MONOTONIC). */
function monoMs(): number {
  return Number(process.hrtime.bigint() / 1_000_000n);
}

function bootId(procfsPath: string): string {
  try {
    return readFileSync(join(procfsPath, 'sys/kernel/random/boot_id'), 'utf8').trim().replaceAll('-', '').slice(0, 16);
  } catch {
    return `pid${process.pid}-${Date.now()}`; // no procfs: readings of this process alone share a boot
  }
}

/** A cached yes/no, asked again every RECHECK_MS; `ask` may answer later (a child process). */
function cached(ask: (set: (v: boolean | undefined) => void) => void): () => boolean | undefined {
  let value: boolean | undefined;
  let checkedAt = -Infinity;
  return () => {
    const now = performance.now();
    if (now - checkedAt > RECHECK_MS) {
      checkedAt = now;
      ask((v) => (value = v));
    }
    return value;
  };
}

/** systemd-timesyncd (Raspberry Pi OS's default) marks a sync by creating this file. */
function timesyncdProbe(flagFile: string): () => boolean {
  const probe = cached((set) => set(existsSync(flagFile)));
  return () => probe() === true;
}

/** `timedatectl` reports the kernel's NTP-synchronised flag (adjtimex), whatever keeps the time (chrony, ntpd). */
function timedatectlProbe(): () => boolean | undefined {
  return cached((set) =>
    execFile('timedatectl', ['show', '-p', 'NTPSynchronized', '--value'], { timeout: 5000 }, (err, out) => {
      set(err ? undefined : out.trim() === 'yes');
    }),
  );
}

/** Which source 'auto' means here: timesyncd if it runs, else timedatectl if it answers, else none. */
export async function detectSyncSource(timesyncDir = TIMESYNC_DIR): Promise<Exclude<ClockSyncSource, 'auto'>> {
  if (existsSync(timesyncDir)) return 'timesyncd';
  const answers = await new Promise<boolean>((resolve) =>
    execFile('timedatectl', ['show', '-p', 'NTPSynchronized', '--value'], { timeout: 5000 }, (err) => resolve(!err)),
  );
  return answers ? 'timedatectl' : 'none';
}

/** The machine's clocks, with whether the wall clock is synchronised read from `source`. */
export function systemClock(source: Exclude<ClockSyncSource, 'auto'>, opts: { syncFlag?: string; procfsPath?: string } = {}): ClockSource {
  const flag = opts.syncFlag ?? join(TIMESYNC_DIR, 'synchronized');
  const synced = source === 'timesyncd' ? timesyncdProbe(flag) : source === 'timedatectl' ? timedatectlProbe() : () => undefined;
  return {
    wallMs: Date.now,
    monoMs,
    bootId: bootId(opts.procfsPath ?? '/proc'),
    synced,
    via: source === 'timesyncd' ? `timesyncd (${flag})` : source,
  };
}

export interface ClockOptions {
  /** Consumers of the log wait this long (from start) for the clock to synchronise; 0: never. */
  holdSec: number;
  /** Where the offsets of past boots are kept (a backlog may outlive a reboot). */
  offsetsFile?: string;
  logger?: { info(o: object, m: string): void; warn(o: object, m: string): void };
}

export class Clock {
  private readonly startedMono: number;
  private readonly past: Map<string, number>;
  private syncedOffsetSaved = false;

  constructor(
    private readonly source: ClockSource,
    private readonly opts: ClockOptions,
  ) {
    this.startedMono = source.monoMs();
    this.past = new Map(Object.entries(readOffsets(opts.offsetsFile)));
    if (source.synced() === undefined)
      opts.logger?.info(
        { via: source.via },
        'cannot tell whether the system clock is synchronised: readings are marked unsynchronised and never corrected',
      );
  }

  /** Whether the wall clock is known synchronised. */
  synced(): boolean {
    return this.source.synced() === true;
  }

  /** False only while the clock is known unsynchronised: retention by age waits then. */
  trusted(): boolean {
    return this.source.synced() !== false;
  }

  stamp(): ClockStamp {
    const receivedAt = this.source.wallMs();
    const synced = this.source.synced();
    if (synced === false) return { receivedAt, clockSynced: false, boot: this.source.bootId, mono: this.source.monoMs() };
    return { receivedAt, clockSynced: synced === true };
  }

  /** Whether the log's consumers wait: the clock is known unsynchronised, and not for longer than holdSec since start. */
  holding(): boolean {
    return this.source.synced() === false && this.source.monoMs() - this.startedMono < this.opts.holdSec * 1000;
  }

  /**
   * wall - monotonic per boot whose clock is known: this boot's as measured when its clock first
   * synchronised, and kept. Measured anew at each call, it moved with every later slew or step, and
   * the store and a sink correcting the same reading a moment apart gave it different times.
   */
  offsets(): ClockOffsets {
    if (this.synced() && !this.syncedOffsetSaved) this.save(this.source.wallMs() - this.source.monoMs());
    return Object.fromEntries(this.past);
  }

  status(): ClockStatus {
    const synced = this.source.synced();
    return { synced: synced ?? null, via: this.source.via, holding: this.holding(), knownBoots: Object.keys(this.offsets()).length };
  }

  /** Keep this boot's offset for after a restart of a later boot (the latest KEPT_BOOTS boots). */
  private save(offset: number): void {
    this.syncedOffsetSaved = true;
    this.past.delete(this.source.bootId);
    this.past.set(this.source.bootId, offset);
    while (this.past.size > KEPT_BOOTS) this.past.delete(this.past.keys().next().value!);
    this.opts.logger?.info({ offsetMs: offset }, 'system clock synchronised: readings received before are corrected as they are consumed');
    const file = this.opts.offsetsFile;
    if (!file) return;
    try {
      const tmp = join(dirname(file), `.clock-offsets.${process.pid}.tmp`);
      writeFileSync(tmp, JSON.stringify(Object.fromEntries(this.past)), { mode: 0o600 });
      renameSync(tmp, file);
    } catch (err) {
      this.opts.logger?.warn(
        { err: (err as Error).message },
        'could not keep the clock offset (readings of this boot left in the log at a reboot stay uncorrected)',
      );
    }
  }
}

function readOffsets(file: string | undefined): Record<string, number> {
  if (!file || !existsSync(file)) return {};
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    if (typeof parsed !== 'object' || parsed === null) return {};
    return Object.fromEntries(Object.entries(parsed).filter(([, v]) => Number.isSafeInteger(v))) as Record<string, number>;
  } catch {
    return {};
  }
}
