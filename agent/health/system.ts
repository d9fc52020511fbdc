// The machine the agent runs on: CPU load, temperature, memory, network, uptime, and on a
// Raspberry Pi the firmware's throttling and under-voltage flags. Sampled every few seconds from
// files the kernel keeps (Node's os module for CPU times and memory; /sys and /proc for the rest), so
// a sample costs a few file reads, never a process.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { cpus, freemem, loadavg, totalmem, uptime } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The firmware's throttling bits (vcgencmd get_throttled), by name. */
const THROTTLE_FLAGS = [
  [0, 'under-voltage'],
  [1, 'arm-frequency-capped'],
  [2, 'throttled'],
  [3, 'soft-temperature-limit'],
] as const;
const SINCE_BOOT_SHIFT = 16;
export const THROTTLE_FLAG_NAMES = THROTTLE_FLAGS.map(([, name]) => name);

export interface Throttling {
  /** Where the flags came from. */
  source: 'vcgencmd' | 'sysfs';
  raw: number;
  /** Flags set now. */
  now: string[];
  /** Flags that were set at some time since boot. */
  sinceBoot: string[];
}

export function decodeThrottled(raw: number, source: Throttling['source']): Throttling {
  const named = (shift: number) => THROTTLE_FLAGS.filter(([bit]) => (raw >>> (bit + shift)) & 1).map(([, name]) => name);
  return { source, raw, now: named(0), sinceBoot: named(SINCE_BOOT_SHIFT) };
}

export interface NetworkInterface {
  name: string;
  up: boolean;
  rxBytes: number;
  txBytes: number;
}

export interface SystemSample {
  at: string;
  cpu: { percent: number; load1: number; load5: number; load15: number; cores: number };
  /** The hottest thermal zone, °C; null where there is none. */
  temperatureC: number | null;
  memory: { totalBytes: number; availableBytes: number };
  network: NetworkInterface[];
  uptimeSeconds: number;
  /** null off a Raspberry Pi (no firmware to ask). */
  throttling: Throttling | null;
}

export interface SystemSources {
  /** Root of /sys (a fake tree in tests). */
  sys: string;
  /** Root of /proc. */
  proc: string;
  /** The vcgencmd command, when it is there (Raspberry Pi OS); undefined: only the sysfs node. */
  vcgencmd?: string;
}

const readText = (path: string) => {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
};

/** The hottest of /sys/class/thermal/thermal_zone* (millidegrees in `temp`). */
export function readTemperature(sys: string): number | null {
  const dir = join(sys, 'class/thermal');
  if (!existsSync(dir)) return null;
  const temps = readdirSync(dir)
    .filter((z) => z.startsWith('thermal_zone'))
    .map((z) => Number(readText(join(dir, z, 'temp'))))
    .filter((t) => Number.isFinite(t));
  return temps.length ? Math.max(...temps) / 1000 : null;
}

/** The firmware's throttled node, on the Pi's own kernels (`soc:firmware`, or `axi:firmware` on a Pi 5). */
function throttledNode(sys: string): string | undefined {
  const platform = join(sys, 'devices/platform');
  for (const candidate of ['soc/soc:firmware/get_throttled', 'axi/axi:firmware/get_throttled', 'soc:firmware/get_throttled']) {
    if (existsSync(join(platform, candidate))) return join(platform, candidate);
  }
  return undefined;
}

export async function readThrottling(sources: SystemSources): Promise<Throttling | null> {
  if (sources.vcgencmd) {
    try {
      const { stdout } = await run(sources.vcgencmd, ['get_throttled'], { timeout: 2000 });
      const m = /throttled=0x([0-9a-f]+)/i.exec(stdout);
      if (m) return decodeThrottled(parseInt(m[1], 16), 'vcgencmd');
    } catch {
      // no firmware interface for this user (not in group video): the sysfs node may still be there
    }
  }
  const node = throttledNode(sources.sys);
  const text = node && readText(node);
  if (text === undefined || !/^(0x)?[0-9a-f]+$/i.test(text)) return null;
  return decodeThrottled(parseInt(text.replace(/^0x/i, ''), 16), 'sysfs');
}

/** Bytes in and out per interface (/proc/net/dev), and whether it is up (/sys/class/net/<if>/operstate). */
export function readNetwork(sources: SystemSources): NetworkInterface[] {
  const text = readText(join(sources.proc, 'net/dev')) ?? '';
  return text
    .split('\n')
    .slice(2)
    .map((line) => /^\s*([^:]+):\s*(\d+)(?:\s+\d+){7}\s+(\d+)/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null && m[1] !== 'lo')
    .map((m) => ({
      name: m[1],
      up: readText(join(sources.sys, 'class/net', m[1], 'operstate')) === 'up',
      rxBytes: Number(m[2]),
      txBytes: Number(m[3]),
    }));
}

/** The vcgencmd of Raspberry Pi OS, if this machine has one. */
export function findVcgencmd(): string | undefined {
  return ['/usr/bin/vcgencmd', '/opt/vc/bin/vcgencmd'].find((p) => existsSync(p));
}

/** CPU time of all cores so far (ms): busy and in all. */
function cpuTimes(): { busy: number; total: number; cores: number } {
  let busy = 0;
  let total = 0;
  const all = cpus();
  for (const { times } of all) {
    const sum = times.user + times.nice + times.sys + times.irq + times.idle;
    total += sum;
    busy += sum - times.idle;
  }
  return { busy, total, cores: all.length };
}

/** The previous sample's CPU times: a sample's percentage is of the time since (the first: since boot). */
let lastCpu = { busy: 0, total: 0 };

export async function sampleSystem(sources: SystemSources): Promise<SystemSample> {
  const throttling = await readThrottling(sources);
  const now = cpuTimes();
  const total = now.total - lastCpu.total;
  const percent = total > 0 ? (100 * (now.busy - lastCpu.busy)) / total : 0;
  lastCpu = now;
  const [load1, load5, load15] = loadavg();
  return {
    at: new Date().toISOString(),
    cpu: { percent: Math.round(percent * 10) / 10, load1, load5, load15, cores: now.cores },
    temperatureC: readTemperature(sources.sys),
    // freemem() is the kernel's MemAvailable (what can be had without swapping), not MemFree.
    memory: { totalBytes: totalmem(), availableBytes: freemem() },
    network: readNetwork(sources),
    uptimeSeconds: Math.round(uptime()),
    throttling,
  };
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(0)} MB`;

/** A sample for people (`edge-agent health`). */
export function formatSystem(s: SystemSample): string {
  const days = Math.floor(s.uptimeSeconds / 86400);
  const hours = Math.floor((s.uptimeSeconds % 86400) / 3600);
  const lines = [
    `system: cpu ${s.cpu.percent}% of ${s.cpu.cores} cores (load ${s.cpu.load1.toFixed(2)} ${s.cpu.load5.toFixed(2)} ${s.cpu.load15.toFixed(2)}), ${s.temperatureC === null ? 'no temperature sensor' : `${s.temperatureC.toFixed(1)} °C`}, memory ${mb(s.memory.availableBytes)} available of ${mb(s.memory.totalBytes)}, up ${days} d ${hours} h`,
    `network: ${s.network.map((n) => `${n.name} ${n.up ? 'up' : 'down'} (in ${mb(n.rxBytes)}, out ${mb(n.txBytes)})`).join('; ') || 'none'}`,
  ];
  const t = s.throttling;
  lines.push(
    t
      ? `throttling (${t.source}, 0x${t.raw.toString(16)}): now ${t.now.join(', ') || 'none'}; since boot ${t.sinceBoot.join(', ') || 'none'}`
      : 'throttling: no Raspberry Pi firmware to ask',
  );
  return lines.join('\n');
}

/** Samples every `intervalMs`; the latest one is kept for the API, metrics and alerts. */
export class SystemMonitor {
  private timer: NodeJS.Timeout | undefined;
  private last: SystemSample | undefined;

  constructor(
    private readonly sources: SystemSources,
    private readonly intervalMs: number,
  ) {}

  async start(): Promise<void> {
    await this.sample();
    this.timer = setInterval(() => void this.sample(), this.intervalMs);
    this.timer.unref();
  }

  latest(): SystemSample | undefined {
    return this.last;
  }

  private async sample(): Promise<void> {
    try {
      this.last = await sampleSystem(this.sources);
    } catch {
      // a file that vanished (a network interface going away): the next sample tries again
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
