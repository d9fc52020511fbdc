// Where the time goes: a summary of V8 CPU profiles (`--cpu-prof`, one file per thread) that
// `BENCH_PROFILE_DIR=dir npm run bench -- <name>` leaves. For each profile: the time sampled, the
// share idle, and the busy time by part (the agent's own folders, each package, Node's core, the
// garbage collector, native code V8 does not attribute), then the functions that took most, then the
// busy periods (a PUBACK that arrives in one waits for its end) and what fills the long ones.
//   node dist/scripts/bench/profile-summary.js dir [--top 12] [--last SECONDS]
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  /** Microseconds from the previous sample (the first: from startTime). */
  timeDeltas: number[];
}

/** The part a function belongs to, from its script's URL. */
export function partOf(frame: ProfileNode['callFrame']): string {
  const { url, functionName } = frame;
  if (!url) {
    if (functionName === '(garbage collector)') return 'garbage collector';
    if (functionName === '(idle)') return 'idle';
    return 'native (V8, libuv, addons)';
  }
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (pkg) return pkg[1];
  if (url.startsWith('node:')) return 'Node core';
  const own = /\/(agent\/[^/]+(?:\/[^/.]+(?=\/))?)/.exec(url);
  if (own) return own[1];
  return url.replace(/^.*\//, '');
}

export interface Summary {
  file: string;
  sampledMs: number;
  idleShare: number;
  /** Busy time by part, ms, largest first. */
  parts: [string, number][];
  /** Self time by function, ms, largest first. */
  functions: [string, number][];
}

/** Largest first. */
const desc = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]);

export function summarise(file: string, profile: Profile): Summary {
  const sampledMs = (profile.endTime - profile.startTime) / 1000;
  const perSample = sampledMs / Math.max(1, profile.samples.length);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const hits = new Map<number, number>();
  for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
  const parts = new Map<string, number>();
  const functions = new Map<string, number>();
  let idle = 0;
  for (const [id, count] of hits) {
    const { callFrame } = byId.get(id)!;
    const part = partOf(callFrame);
    const ms = count * perSample;
    if (part === 'idle') {
      idle += ms;
      continue;
    }
    parts.set(part, (parts.get(part) ?? 0) + ms);
    const where = callFrame.url ? `${callFrame.url.replace(/^.*\/(node_modules|dist)\//, '')}:${callFrame.lineNumber + 1}` : '';
    const name = `${callFrame.functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
    functions.set(name, (functions.get(name) ?? 0) + ms);
  }
  return { file, sampledMs, idleShare: idle / sampledMs, parts: desc(parts), functions: desc(functions) };
}

/** Busy periods longer than these (ms) are counted. */
const STALL_MS = [20, 40, 80] as const;

export interface Stalls {
  /** The time looked at, ms (the profile's last `lastSec`, or all of it). */
  windowMs: number;
  /** Busy periods (samples with no idle one between them) longer than each of STALL_MS. */
  over: Record<(typeof STALL_MS)[number], number>;
  /** Self time by function inside the periods over the first of STALL_MS, ms, largest first. */
  fill: [string, number][];
}

const nameOf = (frame: ProfileNode['callFrame']) => frame.functionName || `(anonymous ${partOf(frame)})`;

/** The main thread's busy periods: how often it was busy long enough to hold what waited, and with what. */
export function stalls(profile: Profile, lastSec = Infinity): Stalls {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const from = profile.endTime - lastSec * 1e6;
  const periods: { ms: number; ids: [number, number][] }[] = [];
  let current: (typeof periods)[number] | undefined;
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    at += profile.timeDeltas[i];
    if (at < from) return;
    const frame = byId.get(id)!.callFrame;
    if (partOf(frame) === 'idle') return void (current = undefined);
    if (!current) periods.push((current = { ms: 0, ids: [] }));
    const ms = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    current.ms += ms;
    current.ids.push([id, ms]);
  });
  const fill = new Map<string, number>();
  for (const p of periods.filter((p) => p.ms > STALL_MS[0]))
    for (const [id, ms] of p.ids) {
      const name = nameOf(byId.get(id)!.callFrame);
      fill.set(name, (fill.get(name) ?? 0) + ms);
    }
  const over = Object.fromEntries(STALL_MS.map((t) => [t, periods.filter((p) => p.ms > t).length])) as Stalls['over'];
  return {
    windowMs: Math.min(lastSec * 1000, (profile.endTime - profile.startTime) / 1000),
    over,
    fill: desc(fill),
  };
}

export function formatStalls(s: Stalls, top: number): string {
  const filled = s.fill.reduce((a, [, ms]) => a + ms, 0);
  return [
    `  busy periods over ${(s.windowMs / 1000).toFixed(0)} s: ${STALL_MS.map((t) => `${s.over[t]} over ${t} ms`).join(', ')}; in those over ${STALL_MS[0]} ms (${(filled / 1000).toFixed(1)} s):`,
    ...s.fill.slice(0, top).map(([name, ms]) => `  ${`${((100 * ms) / filled).toFixed(1)} %`.padStart(7)}  ${name}`),
  ].join('\n');
}

export function formatSummary(s: Summary, top: number): string {
  const busy = s.parts.reduce((a, [, ms]) => a + ms, 0);
  const pct = (ms: number) => `${((100 * ms) / busy).toFixed(1)} %`.padStart(7);
  return [
    `${s.file}: ${(s.sampledMs / 1000).toFixed(1)} s sampled, ${(100 * s.idleShare).toFixed(0)} % idle, ${(busy / 1000).toFixed(1)} s busy`,
    '  busy time by part:',
    ...s.parts.slice(0, top).map(([part, ms]) => `  ${pct(ms)}  ${part}`),
    '  functions (self time):',
    ...s.functions.slice(0, top).map(([name, ms]) => `  ${pct(ms)}  ${name}`),
  ].join('\n');
}

if (import.meta.filename === process.argv[1]) {
  const [dir] = process.argv.slice(2);
  const option = (name: string, otherwise: number) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? Number(process.argv[i + 1]) : otherwise;
  };
  const top = option('--top', 12);
  const last = option('--last', Infinity);
  if (!dir) {
    console.error('usage: profile-summary <dir of .cpuprofile files> [--top N] [--last SECONDS]');
    process.exit(2);
  }
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  if (!files.length) {
    console.error(`${dir}: no .cpuprofile files`);
    process.exit(1);
  }
  for (const f of files.sort()) {
    const profile = JSON.parse(readFileSync(join(dir, f), 'utf8')) as Profile;
    console.log(`${formatSummary(summarise(f, profile), top)}\n${formatStalls(stalls(profile, last), top)}\n`);
  }
}
