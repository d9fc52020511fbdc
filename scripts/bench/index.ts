// npm run bench [-- name ...]: runs the named benchmarks (default: all) and prints their tables.
import { benchAbuse } from './abuse.js';
import { benchApi } from './api.js';
import { benchBinary } from './binary.js';
import { benchBroker } from './broker.js';
import { benchIdle } from './idle.js';
import { benchIngest } from './ingest.js';
import { benchLogin } from './login.js';
import { benchMemory } from './memory.js';
import { benchPage } from './page.js';
import { benchRetention } from './retention.js';
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

const names = process.argv.slice(2);
for (const name of names.length ? names : Object.keys(benches)) {
  const bench = benches[name];
  if (!bench) {
    console.error(`unknown benchmark ${name}; known: ${Object.keys(benches).join(', ')}`);
    process.exit(2);
  }
  await bench();
}
