// An export of 1,000,000 rows from a running agent (a child process): every row arrives, and the
// agent's memory stays flat while it streams (its RSS sampled from /proc all along).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, PRODUCTION_NODE, spawnAgent, tempDir, writeConfig, type ChildAgent } from '../helpers/agent.js';
import { seedSqliteStore } from '../../scripts/bench/seed-store.js';
import { addUser } from '../helpers/users.js';
import { authHeader } from '../helpers/web.js';

const ROWS = 1_000_000;

const rssBytes = (pid: number) => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

describe('export at scale', () => {
  let dir: string;
  let agent: ChildAgent;
  let base: string;

  beforeAll(async () => {
    dir = tempDir();
    const config = writeConfig(dir, { rollups: { enabled: false } });
    seedSqliteStore(join(dir, 'data', 'store.db'), ROWS);
    await addUser(config, 'exporter', 'export-pass', ['viewer']);
    agent = await spawnAgent(['--config', config], PRODUCTION_NODE.env, PRODUCTION_NODE.args);
    base = `http://${agent.listeners.http}`;
  }, 120_000);
  afterAll(async () => {
    agent?.proc.kill('SIGTERM');
    await agent?.exited;
    cleanup(dir);
  });

  it(`streams ${ROWS.toLocaleString('en-US')} rows as CSV with the agent's RSS bounded`, async () => {
    const pid = agent.proc.pid!;
    // Warm up (the worker, the first pages), then take the resting RSS.
    await (await fetch(`${base}/api/export?format=csv&to=${Date.now() - ROWS + 10_000}`, { headers: authHeader({ basic: ['exporter', 'export-pass'] }) })).text();
    const before = rssBytes(pid);
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(pid))), 50);
    const started = performance.now();
    const res = await fetch(`${base}/api/export?format=csv`, { headers: authHeader({ basic: ['exporter', 'export-pass'] }) });
    expect(res.status).toBe(200);
    let lines = 0;
    let bytes = 0;
    let tail = '';
    // Count rows without keeping them: the test's own memory stays flat too.
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      const text = Buffer.from(chunk).toString();
      bytes += chunk.byteLength;
      for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lines++;
      tail = (tail + text).slice(-200);
    }
    clearInterval(sampler);
    const seconds = (performance.now() - started) / 1000;
    expect(lines).toBe(ROWS + 1); // the header and every row
    expect(tail.trim().split('\n').at(-1)).toMatch(new RegExp(`^${ROWS},`));
    const grownMb = (peak - before) / 1e6;
    console.info(`export: ${ROWS} rows, ${(bytes / 1e6).toFixed(0)} MB in ${seconds.toFixed(1)} s (${Math.round(ROWS / seconds)} rows/s); agent RSS ${(before / 1e6).toFixed(0)} MB at rest, peak ${(peak / 1e6).toFixed(0)} MB (+${grownMb.toFixed(1)} MB)`);
    // The response is ~90 MB: holding it (or a large part) would show many times over.
    expect(grownMb).toBeLessThan(48);
  }, 180_000);
});
