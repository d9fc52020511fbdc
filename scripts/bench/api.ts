// npm run bench -- api: the web API reading a SQLite store of 500,000 readings, next to sqlite3's
// own command line on the same readings in a plain table (a row each, seq the key, an index on time)
// in the same run: a page of 100 (GET /api/data against the same SELECT through `sqlite3 -csv`), and
// a whole export as CSV (GET /api/export against `sqlite3 -csv` of the table), with the agent's peak
// RSS while it streams.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserStore } from '../../agent/users/store.js';
import { plainCopy, seedSqliteStore } from './seed-store.js';
import { startBenchAgent } from './agent.js';
import { median, printLimits, printTable } from './report.js';

const ROWS = 500_000;
const PAGES = 200;
const PAGE = 100;
const AUTH = { authorization: `Basic ${Buffer.from('reader:reader-password').toString('base64')}` };

const rss = (pid: number) => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

/** Run a command, counting its output's bytes; seconds taken. */
function timed(cmd: string, args: string[]): Promise<{ seconds: number; bytes: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let bytes = 0;
    child.stdout.on('data', (d: Buffer) => (bytes += d.length));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve({ seconds: (performance.now() - started) / 1000, bytes }) : reject(new Error(`${cmd} exited with ${code}`)),
    );
  });
}

async function fetchCounting(url: string): Promise<{ seconds: number; bytes: number; lines: number }> {
  const started = performance.now();
  const res = await fetch(url, { headers: AUTH });
  if (res.status !== 200) throw new Error(`${url}: HTTP ${res.status}`);
  let bytes = 0;
  let lines = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    bytes += chunk.byteLength;
    for (const b of chunk) if (b === 0x0a) lines++;
  }
  return { seconds: (performance.now() - started) / 1000, bytes, lines };
}

export async function benchApi(): Promise<void> {
  try {
    execFileSync('sqlite3', ['-version']);
  } catch {
    console.error('api bench: the sqlite3 command is needed (apt-get install sqlite3)');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'bench-api-'));
  const store = join(dir, 'data', 'store.db');
  seedSqliteStore(store, ROWS);
  const plain = join(dir, 'plain.db');
  plainCopy(store, plain);
  const agent = await startBenchAgent(dir, { rollups: { enabled: false } });
  await new UserStore(join(dir, 'users.json')).add('reader', 'reader-password', ['viewer']);
  const base = `http://127.0.0.1:${agent.port('http')}`;
  try {
    // Pages at random places: the API by cursor-free seq ranges (from/to), sqlite3 the same SELECT.
    const ours: number[] = [];
    const theirs: number[] = [];
    const start = Date.now() - ROWS; // the seeded readings' receive times: start + seq
    for (let i = 0; i < PAGES; i++) {
      const seq = 1 + Math.floor(Math.random() * (ROWS - PAGE));
      const from = start + seq;
      ours.push((await fetchCounting(`${base}/api/data?limit=${PAGE}&from=${from}`)).seconds * 1000);
      theirs.push(
        (await timed('sqlite3', ['-csv', plain, `SELECT * FROM readings WHERE seq >= ${seq} ORDER BY seq LIMIT ${PAGE}`])).seconds * 1000,
      );
    }
    const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) * p)];

    await fetchCounting(`${base}/api/export?format=csv&to=${start + 20_000}`); // warm-up
    const restRss = rss(agent.proc.pid!);
    let peakRss = restRss;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, rss(agent.proc.pid!))), 50);
    const exports: number[] = [];
    const dumps: number[] = [];
    for (let round = 0; round < 2; round++) {
      const exported = await fetchCounting(`${base}/api/export?format=csv`);
      // A fast export of nothing is no figure (a store the agent did not read once looked 200 times faster).
      if (exported.lines < ROWS) throw new Error(`the export gave ${exported.lines} lines, not the ${ROWS} readings of the store`);
      exports.push(ROWS / exported.seconds);
      dumps.push(ROWS / (await timed('sqlite3', ['-csv', '-header', plain, 'SELECT * FROM readings ORDER BY seq'])).seconds);
    }
    clearInterval(sampler);
    printTable(
      `api: SQLite store of ${ROWS.toLocaleString('en-US')} readings; the baseline is sqlite3's command line on the same readings in a plain table (a process per page, as a script would); ${PAGES} pages of ${PAGE}, 2 full exports`,
      [
        {
          name: `page of ${PAGE}, p50 ms`,
          baselineName: 'sqlite3 CLI',
          baseline: q(theirs, 0.5),
          value: q(ours, 0.5),
          target: 0.5,
          higherIsBetter: false,
        },
        {
          name: `page of ${PAGE}, p99 ms`,
          baselineName: 'sqlite3 CLI',
          baseline: q(theirs, 0.99),
          value: q(ours, 0.99),
          target: 0.25,
          higherIsBetter: false,
        },
        {
          name: 'CSV export, rows/s',
          baselineName: 'sqlite3 -csv',
          baseline: median(dumps),
          value: median(exports),
          target: 0.1,
          higherIsBetter: true,
        },
      ],
    );
    printLimits('api: absolute targets', [
      { name: 'agent RSS growth while exporting', value: (peakRss - restRss) / 1e6, unit: 'MB', max: 48 },
    ]);
  } finally {
    await agent.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
