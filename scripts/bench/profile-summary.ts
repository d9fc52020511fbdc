// Where the time goes: a summary of V8 CPU profiles (`--cpu-prof`, one file per thread) that
// `BENCH_PROFILE_DIR=dir npm run bench -- <name>` leaves. For each profile: the time sampled, the
// share idle, and the busy time by part (the agent's own folders, each package, Node's core, the
// garbage collector, native code V8 does not attribute), then the functions that took most.
//   node dist/scripts/bench/profile-summary.js dir [--top 12]
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
  const desc = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]);
  return { file, sampledMs, idleShare: idle / sampledMs, parts: desc(parts), functions: desc(functions) };
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
  const i = process.argv.indexOf('--top');
  const top = i > 0 ? Number(process.argv[i + 1]) : 12;
  if (!dir) {
    console.error('usage: profile-summary <dir of .cpuprofile files> [--top N]');
    process.exit(2);
  }
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  if (!files.length) {
    console.error(`${dir}: no .cpuprofile files`);
    process.exit(1);
  }
  for (const f of files.sort())
    console.log(`${formatSummary(summarise(f, JSON.parse(readFileSync(join(dir, f), 'utf8')) as Profile), top)}\n`);
}
