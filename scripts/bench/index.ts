// npm run bench [-- name ...]: runs the named benchmarks (default: all), prints each one's tables and
// then one summary (every figure, its baselines measured in the same run, its target, met or not).
// The full run (no names, or --write) also writes docs/performance.md.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../project-root.js';
import { benchAbuse } from './abuse.js';
import { benchApi } from './api.js';
import { benchBinary } from './binary.js';
import { benchBroker } from './broker.js';
import { benchIdle } from './idle.js';
import { benchIngest } from './ingest.js';
import { benchLogin } from './login.js';
import { benchMemory } from './memory.js';
import { benchPage } from './page.js';
import { markdownReport, printSummary, startSection } from './report.js';
import { benchRetention } from './retention.js';
import { machine, versions } from './machine.js';
import { benchSync } from './sync.js';
import { benchWear } from './wear.js';

const benches: Record<string, () => Promise<unknown>> = {
  broker: benchBroker,
  ingest: benchIngest,
  sync: benchSync,
  login: benchLogin,
  retention: benchRetention,
  api: benchApi,
  idle: benchIdle,
  binary: benchBinary,
  page: benchPage,
  wear: benchWear,
  memory: benchMemory,
  abuse: benchAbuse,
};

const args = process.argv.slice(2);
const names = args.filter((a) => !a.startsWith('--'));
const unknown = names.filter((n) => !benches[n]);
if (unknown.length) {
  console.error(`unknown benchmark ${unknown.join(', ')}; known: ${Object.keys(benches).join(', ')}`);
  process.exit(2);
}
const started = new Date();
for (const name of names.length ? names : Object.keys(benches)) {
  startSection(name);
  await benches[name]();
}
printSummary();
if (names.length === 0 || args.includes('--write')) {
  const path = join(projectRoot(), 'docs/performance.md');
  const knobs = Object.entries(process.env)
    .filter(([k]) => k.startsWith('BENCH_'))
    .map(([k, v]) => `${k}=${v} `)
    .join('');
  const command = `${knobs}npm run bench${names.length ? ` -- ${names.join(' ')}` : ''}`;
  const minutes = Math.round((Date.now() - started.getTime()) / 60_000);
  writeFileSync(
    path,
    markdownReport({ command, date: `${started.toISOString().slice(0, 10)} (${minutes} min)`, machine: machine(), versions: versions() }),
  );
  console.log(`\nwritten: ${path}`);
}
