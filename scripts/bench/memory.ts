// npm run bench -- memory: the single executable's resident memory, run as the systemd unit runs it
// (its Environment=), at rest, at a steady 2,000 readings/s with a PostgreSQL sink and rollups (with
// the slope after warm-up), at its peak under the ingest benchmark's load, and while one export of
// 1,000,000 readings goes to a slow reader; next to Mosquitto and the Pi-style pipeline (Mosquitto +
// a Python subscriber writing SQLite) measured in the same run under the same load.
// BENCH_MEMORY_SECONDS (1800): the steady case's measured time, after BENCH_MEMORY_WARMUP (120) s.
// Not 600: V8's heaps swing by 5 MB within minutes, and the slopes of one 30-minute run's 10-minute
// windows went from -1.1 to +2.2 MB per 10 minutes where the whole run's was 0.74.
//
// BENCH_MEMORY_PROGRAM=sources: the agent from its built sources as `npm start` runs it instead.
// BENCH_MEMORY_CASES=rest,ingest,export,steady (all): only these cases, the others reported as not run.
import { readFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultStorePath } from '../../agent/consume/store/index.js';
import { UserStore } from '../../agent/users/store.js';
import { buildBinary } from '../binary/build.js';
import { projectRoot } from '../project-root.js';
import { unitEnvironment } from '../production-node.js';
import { createDatabase, PG_PASSWORD, startMosquitto, type TestDatabase } from '../servers.js';
import { hobbyPayload, startSensors, type Sensors } from '../wear.js';
import { BENCH_USER, benchLoad, benchTopic, startBenchAgent } from './agent.js';
import { startPipeline } from './pipeline.js';
import { statusMb, type Started } from './processes.js';
import { median, printLimits, note, type Limit } from './report.js';
import { seedSqliteStore } from './seed-store.js';

const SECONDS = Number(process.env.BENCH_MEMORY_SECONDS ?? 1800);
const WARM_UP = Number(process.env.BENCH_MEMORY_WARMUP ?? 120);
const RATE = 2000;
const EXPORT_ROWS = 1_000_000;
/** The slow reader: this many bytes a second. */
const READER_BYTES_PER_SEC = 4 * 1024 * 1024;
const VIEWER = { name: 'viewer', password: 'viewer-password' };

type Program = 'agent' | { binary: string; env: NodeJS.ProcessEnv };

async function program(): Promise<Program> {
  if (process.env.BENCH_MEMORY_PROGRAM === 'sources') return 'agent';
  const binary = await buildBinary(process.arch as 'x64' | 'arm64');
  return { binary, env: unitEnvironment(readFileSync(join(projectRoot(), 'systemd/edge-agent.service'), 'utf8')) };
}

/** Resident memory of one or more processes (summed), MB. */
const residentMb = (pids: number[]) => ({
  rss: pids.reduce((n, pid) => n + statusMb(pid, 'VmRSS'), 0),
  anon: pids.reduce((n, pid) => n + statusMb(pid, 'RssAnon'), 0),
});

/** Samples the processes' memory every `everyMs` until stopped. */
class Sampler {
  readonly samples: { t: number; rss: number; anon: number }[] = [];
  private readonly timer: NodeJS.Timeout;
  private readonly started = performance.now();

  constructor(
    private readonly pids: () => number[],
    everyMs = 1000,
  ) {
    this.take();
    this.timer = setInterval(() => this.take(), everyMs);
  }

  private take(): void {
    try {
      this.samples.push({ t: (performance.now() - this.started) / 1000, ...residentMb(this.pids()) });
    } catch {
      // a process ended between two looks
    }
  }

  stop(): this {
    clearInterval(this.timer);
    this.take();
    return this;
  }

  /** Samples taken from `fromSec` on. */
  since(fromSec: number) {
    return this.samples.filter((s) => s.t >= fromSec);
  }

  peak(key: 'rss' | 'anon' = 'rss'): number {
    return Math.max(...this.samples.map((s) => s[key]));
  }
}

/** Least-squares slope of RSS (or anonymous RSS) over time, MB per 10 minutes. */
function slopePer10Min(samples: { t: number; rss: number; anon: number }[], key: 'rss' | 'anon' = 'rss'): number {
  const n = samples.length;
  const mt = samples.reduce((a, s) => a + s.t, 0) / n;
  const mr = samples.reduce((a, s) => a + s[key], 0) / n;
  const cov = samples.reduce((a, s) => a + (s.t - mt) * (s[key] - mr), 0);
  const vt = samples.reduce((a, s) => a + (s.t - mt) ** 2, 0);
  return (cov / vt) * 600;
}

/** Mean RSS of each whole minute, from the first sample on. */
function byMinute(samples: { t: number; rss: number }[]): string[] {
  const minutes: number[][] = [];
  for (const s of samples) (minutes[Math.floor(s.t / 60)] ??= []).push(s.rss);
  return minutes.map((m) => (m.reduce((a, b) => a + b, 0) / m.length).toFixed(1));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Median RSS and anonymous RSS over `seconds`, after `settleSec` at rest. */
async function atRest(pids: number[], settleSec = 20, seconds = 20): Promise<{ rss: number; anon: number }> {
  await sleep(settleSec * 1000);
  const s = new Sampler(() => pids);
  await sleep(seconds * 1000);
  const samples = s.stop().samples;
  return { rss: median(samples.map((x) => x.rss)), anon: median(samples.map((x) => x.anon)) };
}

async function withAgent<T>(
  prog: Program,
  extra: Record<string, unknown>,
  work: (agent: Started, dir: string) => Promise<T>,
  prepare?: (dir: string) => void | Promise<void>,
): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-memory-'));
  try {
    await prepare?.(dir);
    const agent = await startBenchAgent(dir, extra, prog);
    try {
      return await work(agent, dir);
    } finally {
      await agent.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function restCase(prog: Program): Promise<{ agent: { rss: number; anon: number }; mosquitto: number; pipeline: number }> {
  // The agent hands its start-up file pages back 5 s after ready (agent.pageOutAfter); those it
  // uses again come back over about three minutes: measured from 4 to 5 minutes after ready.
  const agent = await withAgent(prog, {}, (a) => atRest([a.proc.pid!], 240, 60));
  const mosquitto = await startMosquitto();
  const mosquittoRest = await atRest([mosquitto.pid!], 5, 10).finally(() => mosquitto.stop());
  const dir = mkdtempSync(join(tmpdir(), 'bench-memory-pipeline-'));
  const pipeline = await startPipeline(join(dir, 'readings.db'));
  const pipelineRest = await atRest(pipeline.pids, 5, 10).finally(() => pipeline.stop());
  rmSync(dir, { recursive: true, force: true });
  return { agent, mosquitto: mosquittoRest.rss, pipeline: pipelineRest.rss };
}

/** RATE readings/s from 20 sensors (QoS 1), for WARM_UP + SECONDS. */
const steadySensors = (port: number, auth: boolean) =>
  startSensors({
    port,
    sensors: 20,
    hz: RATE / 20,
    qos: 1,
    topic: benchTopic,
    payload: hobbyPayload,
    ...(auth ? { username: BENCH_USER.name, password: BENCH_USER.password } : {}),
  });

async function steadyCase(prog: Program, db: TestDatabase) {
  const sinks = [{ name: 'cloud', type: 'postgres', url: db.url, password: PG_PASSWORD }];
  const pipelineDir = mkdtempSync(join(tmpdir(), 'bench-memory-pipeline-'));
  const pipeline = await startPipeline(join(pipelineDir, 'readings.db'));
  try {
    return await withAgent(prog, { sinks }, async (agent) => {
      const sensors: Sensors[] = [await steadySensors(agent.port('mqtt'), true), await steadySensors(pipeline.broker.port, false)];
      const ours = new Sampler(() => [agent.proc.pid!]);
      const theirs = new Sampler(() => pipeline.pids);
      await sleep((WARM_UP + SECONDS) * 1000);
      await Promise.all(sensors.map((s) => s.stop()));
      ours.stop();
      theirs.stop();
      const [sent] = [sensors[0].sent];
      const [{ n }] = await db.query<{ n: string }>('SELECT count(*) AS n FROM telemetry');
      const measured = ours.since(WARM_UP);
      console.log(`steady: the agent's RSS by minute (MB): ${byMinute(ours.samples).join(' ')}`);
      return {
        mean: measured.reduce((a, s) => a + s.rss, 0) / measured.length,
        peak: Math.max(...measured.map((s) => s.rss)),
        slope: slopePer10Min(measured),
        anonMean: measured.reduce((a, s) => a + s.anon, 0) / measured.length,
        anonSlope: slopePer10Min(measured, 'anon'),
        pipelineMean: theirs.since(WARM_UP).reduce((a, s) => a + s.rss, 0) / theirs.since(WARM_UP).length,
        sent,
        inSink: Number(n),
        rate: sent / (WARM_UP + SECONDS),
      };
    });
  } finally {
    await pipeline.stop();
    rmSync(pipelineDir, { recursive: true, force: true });
  }
}

/** The ingest benchmark's load (8 publishers, QoS 1 then QoS 0, as fast as they are taken): the peak. */
async function ingestCase(prog: Program): Promise<{ agent: number; atReady: number; mosquitto: number }> {
  const load = async (port: number, auth: boolean) => {
    await benchLoad(port, 1, 25_000, auth);
    await benchLoad(port, 0, 50_000, auth);
  };
  // The load starts at ready, as sensors reconnecting to an agent that restarts would.
  const { peak, atReady } = await withAgent(prog, {}, async (a) => {
    const s = new Sampler(() => [a.proc.pid!], 200);
    await load(a.port('mqtt'), true);
    await sleep(3000);
    return { peak: s.stop().peak(), atReady: s.samples[0].rss };
  });
  const mosquitto = await startMosquitto();
  try {
    const s = new Sampler(() => [mosquitto.pid!], 200);
    await load(mosquitto.port, false);
    return { agent: peak, atReady, mosquitto: s.stop().peak() };
  } finally {
    await mosquitto.stop();
  }
}

const basic = (auth: string) => ({ authorization: `Basic ${Buffer.from(auth).toString('base64')}` });

/** One authenticated GET, answered 200. */
async function login(url: string, auth: string): Promise<void> {
  const res = await fetch(url, { headers: basic(auth) });
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}`);
  await res.arrayBuffer();
}

/** GET a URL, reading at most `bytesPerSec`; resolves with the bytes read. */
function slowGet(url: string, auth: string, bytesPerSec: number): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers: basic(auth) }, (res) => {
        if (res.statusCode !== 200) return reject(new Error(`export answered ${res.statusCode}`));
        let bytes = 0;
        let windowStart = performance.now();
        let windowBytes = 0;
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          windowBytes += chunk.length;
          const due = (windowBytes / bytesPerSec) * 1000 - (performance.now() - windowStart);
          if (due > 0) {
            res.pause();
            setTimeout(() => {
              windowStart = performance.now();
              windowBytes = 0;
              res.resume();
            }, due);
          }
        });
        res.on('end', () => resolve(bytes));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

async function exportCase(prog: Program): Promise<{ before: number; peak: number; bytes: number; seconds: number }> {
  return withAgent(
    prog,
    {},
    async (agent, dir) => {
      await new UserStore(join(dir, 'users.json')).add(VIEWER.name, VIEWER.password, ['viewer']);
      // Against the agent at rest as the rest case measures it: once the file pages it uses at rest
      // have come back after the start-up page-out (else the export would be charged with them).
      // The viewer logs in first (a Basic check holds for a minute): a login's scrypt takes 16 MB
      // for about 60 ms whatever the request, and the 250 ms samples caught it in some runs only.
      await sleep(220_000);
      await login(`http://127.0.0.1:${agent.port('http')}/api/auth/me`, `${VIEWER.name}:${VIEWER.password}`);
      const before = await atRest([agent.proc.pid!], 20, 20);
      const s = new Sampler(() => [agent.proc.pid!], 250);
      const started = performance.now();
      const bytes = await slowGet(
        `http://127.0.0.1:${agent.port('http')}/api/export?format=json`,
        `${VIEWER.name}:${VIEWER.password}`,
        READER_BYTES_PER_SEC,
      );
      return { before: before.rss, peak: s.stop().peak(), bytes, seconds: (performance.now() - started) / 1000 };
    },
    (dir) => {
      mkdirSync(join(dir, 'data'), { recursive: true, mode: 0o700 });
      seedSqliteStore(defaultStorePath('sqlite', join(dir, 'data')), EXPORT_ROWS);
    },
  );
}

const CASES = ['rest', 'ingest', 'export', 'steady'] as const;
const chosen = new Set(process.env.BENCH_MEMORY_CASES?.split(',') ?? CASES);
for (const c of chosen)
  if (!(CASES as readonly string[]).includes(c)) throw new Error(`BENCH_MEMORY_CASES: no case ${c} (${CASES.join(', ')})`);
const ifChosen = <T>(c: (typeof CASES)[number], run: () => Promise<T>) => (chosen.has(c) ? run() : Promise.resolve(undefined));

async function steadyWithDatabase(prog: Program) {
  const db = await createDatabase();
  try {
    return await steadyCase(prog, db);
  } finally {
    await db.drop();
  }
}

export async function benchMemory(): Promise<void> {
  const prog = await program();
  const what =
    prog === 'agent'
      ? 'the agent from its built sources, as `npm start` runs it'
      : "the single executable, with the systemd unit's Environment=";
  const rest = await ifChosen('rest', () => restCase(prog));
  const ingest = await ifChosen('ingest', () => ingestCase(prog));
  const exported = await ifChosen('export', () => exportCase(prog));
  const steady = await ifChosen('steady', () => steadyWithDatabase(prog));
  const limits: Limit[] = [];
  if (rest)
    limits.push(
      { name: 'at rest', value: rest.agent.rss, unit: 'MB', max: 70, baselines: [rest.mosquitto, rest.pipeline] },
      { name: 'at rest, anonymous', value: rest.agent.anon, unit: 'MB', max: Infinity },
    );
  if (steady)
    limits.push(
      {
        name: `${RATE}/s QoS 1, PostgreSQL sink and rollups: mean after ${WARM_UP} s`,
        value: steady.mean,
        unit: 'MB',
        max: 100,
        baselines: [undefined, steady.pipelineMean],
      },
      { name: `  the same: peak`, value: steady.peak, unit: 'MB', max: Infinity },
      { name: `  the same: slope over ${SECONDS} s, MB per 10 min`, value: steady.slope, unit: 'MB', max: 1 },
      { name: `  the same, anonymous: mean`, value: steady.anonMean, unit: 'MB', max: Infinity },
      { name: `  the same, anonymous: slope, MB per 10 min`, value: steady.anonSlope, unit: 'MB', max: Infinity },
    );
  if (ingest)
    limits.push(
      {
        name: 'ingest benchmark load (QoS 1, then 0): peak',
        value: ingest.agent,
        unit: 'MB',
        max: 150,
        baselines: [ingest.mosquitto],
      },
      { name: '  the same: RSS at ready, as the load began', value: ingest.atReady, unit: 'MB', max: Infinity },
    );
  if (exported)
    limits.push({
      name: `export of ${EXPORT_ROWS.toLocaleString('en-US')} readings at ${READER_BYTES_PER_SEC / 1048576} MB/s: peak over rest`,
      value: exported.peak - exported.before,
      unit: 'MB',
      max: 20,
    });
  printLimits(
    `memory: ${what}; RSS, MB (Mosquitto: no persistence; Pi pipeline: Mosquitto + Python subscriber writing SQLite, both processes), measured in the same run`,
    limits,
    ['Mosquitto', 'Pi pipeline'],
  );
  if (steady) note(`steady: ${steady.sent} readings sent (${steady.rate.toFixed(0)}/s), ${steady.inSink} in PostgreSQL at the end`);
  if (exported)
    note(
      `export: ${(exported.bytes / 1e6).toFixed(0)} MB in ${exported.seconds.toFixed(0)} s, RSS ${exported.before.toFixed(0)} -> ${exported.peak.toFixed(0)} MB`,
    );
}
