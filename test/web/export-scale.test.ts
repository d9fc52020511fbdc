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
    await addUser(config, 'other', 'other-pass', ['viewer']);
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
    await (
      await fetch(`${base}/api/export?format=csv&to=${Date.now() - ROWS + 10_000}`, {
        headers: authHeader({ basic: ['exporter', 'export-pass'] }),
      })
    ).text();
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
    console.info(
      `export: ${ROWS} rows, ${(bytes / 1e6).toFixed(0)} MB in ${seconds.toFixed(1)} s (${Math.round(ROWS / seconds)} rows/s); agent RSS ${(before / 1e6).toFixed(0)} MB at rest, peak ${(peak / 1e6).toFixed(0)} MB (+${grownMb.toFixed(1)} MB)`,
    );
    // The response is ~90 MB: holding it (or a large part) would show many times over.
    expect(grownMb).toBeLessThan(48);
  }, 180_000);

  it('caps exports per user (web.limits.exportsPerUser, 2): a third paused-download of one user gets 429 with Retry-After; another user is served; a slot comes back when a download goes', async () => {
    const exporter = authHeader({ basic: ['exporter', 'export-pass'] });
    const start = (headers: Record<string, string>) => {
      const controller = new AbortController();
      return { controller, res: fetch(`${base}/api/export?format=csv`, { headers, signal: controller.signal }) };
    };
    // Two downloads of ~90 MB each, never read: each holds its slot.
    const held = [start(exporter), start(exporter)];
    for (const h of held) expect((await h.res).status).toBe(200);
    const third = await fetch(`${base}/api/export?format=csv`, { headers: exporter });
    expect(third.status).toBe(429);
    expect(third.headers.get('retry-after')).toBe('10');
    expect(await third.json()).toMatchObject({ message: expect.stringMatching(/^too many exports of yours at once \(at most 2\)/) });
    const other = start(authHeader({ basic: ['other', 'other-pass'] }));
    expect((await other.res).status).toBe(200); // the control: another user is not shut out
    other.controller.abort();
    held[0].controller.abort();
    let again = 0;
    for (let i = 0; i < 50 && again !== 200; i++) {
      const next = start(exporter);
      again = (await next.res).status;
      next.controller.abort();
      if (again !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(again).toBe(200);
    held[1].controller.abort();
  });

  it('caps GraphQL requests per user (web.limits.graphqlRequestsPerUser, 4): of five at once while they scan the store, one gets 429 with Retry-After', async () => {
    const headers = { ...authHeader({ basic: ['exporter', 'export-pass'] }), 'content-type': 'application/json' };
    // Each matches nothing: it looks at every one of the 1,000,000 rows (in slices), which takes a while.
    const scan = () =>
      fetch(`${base}/graphql`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ query: '{ readings(where: ["seq=-1"], limit: 1) { readings { seq } } }' }),
      });
    // Five at once: four are taken (each scans for seconds), the one that comes last is refused.
    const answers = await Promise.all([scan(), scan(), scan(), scan(), scan()]);
    expect(answers.map((a) => a.status).sort()).toEqual([200, 200, 200, 200, 429]);
    const refused = answers.find((a) => a.status === 429)!;
    expect(refused.headers.get('retry-after')).toBe('10');
    expect(await refused.json()).toMatchObject({
      message: expect.stringMatching(/^too many GraphQL requests of yours at once \(at most 4\)/),
    });
    expect((await answers.find((a) => a.status === 200)!.json()).data.readings.readings).toEqual([]); // the control: the others are answered
  }, 120_000);
});
