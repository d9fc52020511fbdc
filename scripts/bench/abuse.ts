// npm run bench -- abuse: the agent at 1,000 readings/s (QoS 1) while one user and one address on
// the LAN do the worst they can, all the time (40 exports left paused, a 100-alias scanning GraphQL
// query, 10 aggregate scans of the store, 300 unfinished HTTP requests, 64 /ws, payloads for a
// backtracking pattern; scripts/bench/abuser.ts, a process of its own), next to a control run of
// the same agent and load without the abuse.
// Reported: PUBACK p99, /health/live p99 and store lag p99 (asked from an address of their own), and
// peak RSS. BENCH_ABUSE_SECONDS (60): each run's measured time; BENCH_ABUSE_KINDS: some kinds only (abuser.ts).
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserStore } from '../../agent/users/store.js';
import { hobbyPayload, startSensors } from '../wear.js';
import { BENCH_USER, benchTopic, startBenchAgent } from './agent.js';
import { startProcess, statusMb, stopAndCount, type Started } from './processes.js';
import { percentile, printLimits, note } from './report.js';

const SECONDS = Number(process.env.BENCH_ABUSE_SECONDS ?? 60);
const STORED = 60_000;
const MALLORY = { name: 'mallory', password: 'mallory-password' };
const WATCHER = { name: 'watcher', password: 'watcher-password' };
const EVIL_TOPIC = `bench/${BENCH_USER.name}/evil`;
const basic = (u: { name: string; password: string }) => ({
  authorization: `Basic ${Buffer.from(`${u.name}:${u.password}`).toString('base64')}`,
});

/** A GET from a loopback address of the watcher's own, timed (ms); Infinity when it failed. */
function timedGet(port: number, path: string, headers: Record<string, string> = {}): Promise<{ ms: number; body: string }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, headers, localAddress: '127.0.61.1', timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ ms: res.statusCode === 200 ? performance.now() - started : Infinity, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ ms: Infinity, body: '' }));
    req.end();
  });
}

/** The abuser, in a process of its own (scripts/bench/abuser.ts). */
function startAbuser(agent: Started): Promise<Started> {
  return startProcess([
    fileURLToPath(new URL('./abuser.js', import.meta.url)),
    String(agent.port('http')),
    String(agent.port('mqtt')),
    BENCH_USER.name,
    BENCH_USER.password,
    EVIL_TOPIC,
    MALLORY.name,
    MALLORY.password,
  ]);
}

/** A store worth scanning, through the agent's own HTTP ingest (so that the log's seqs follow them). */
async function seed(port: number): Promise<void> {
  for (let first = 0; first < STORED; first += 5000) {
    const readings = Array.from({ length: 5000 }, (_, i) => ({
      topic: `old/${(first + i) % 8}`,
      payload: { t: (first + i) % 100, pad: 'x'.repeat(40) },
    }));
    const res = await fetch(`http://127.0.0.1:${port}/api/data`, {
      method: 'POST',
      headers: { ...basic(MALLORY), 'content-type': 'application/json' },
      body: JSON.stringify({ readings }),
    });
    if (res.status !== 201) throw new Error(`seeding the store: ${res.status} ${await res.text()}`);
  }
}

interface Run {
  pubackP99: number;
  /** Other percentiles of the PUBACK's wait (ms): where the tail begins. */
  pubackSpread: string;
  /** The event-loop delay p99 (ms) of the benchmark's process, which sends the readings and times their PUBACKs. */
  ownDelayP99: number;
  liveP99: number;
  lagP99: number;
  peakRss: number;
  acked: number;
  /** What the abuser was answered, by kind and status. */
  answers: Record<string, number>;
}

async function run(abuse: boolean): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-abuse-'));
  const agent = await startBenchAgent(dir, {
    ingest: { schemas: [{ name: 'evil', topics: [EVIL_TOPIC], fields: { s: { type: 'string', pattern: '^(a+)+$' } } }] },
  });
  const users = new UserStore(join(dir, 'users.json'));
  await users.add(MALLORY.name, MALLORY.password, ['operator']);
  await users.add(WATCHER.name, WATCHER.password, ['viewer']);
  try {
    await seed(agent.port('http'));
    const sensors = await startSensors({
      port: agent.port('mqtt'),
      sensors: 10,
      hz: 100,
      qos: 1,
      topic: benchTopic,
      payload: hobbyPayload,
      username: BENCH_USER.name,
      password: BENCH_USER.password,
    });
    const abuser = abuse ? await startAbuser(agent) : undefined;
    // This process times the PUBACKs: its own delays (the machine's cores are shared) are in them.
    const ownDelay = monitorEventLoopDelay({ resolution: 1 });
    ownDelay.enable();
    const live: number[] = [];
    const lag: number[] = [];
    let peakRss = 0;
    let watching = true;
    const rss = setInterval(() => (peakRss = Math.max(peakRss, statusMb(agent.proc.pid!, 'VmRSS'))), 250);
    const watchLive = (async () => {
      while (watching) {
        live.push((await timedGet(agent.port('http'), '/health/live')).ms);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    // Store lag: how old the newest reading a query finds is, when its answer comes.
    const watchStore = (async () => {
      while (watching) {
        const { ms, body } = await timedGet(
          agent.port('http'),
          `/api/data?topic=${encodeURIComponent(benchTopic(0))}&order=desc&limit=1`,
          basic(WATCHER),
        );
        if (ms === Infinity) lag.push(Infinity);
        else {
          const newest = (JSON.parse(body) as { readings: { receivedAt: number }[] }).readings[0]?.receivedAt;
          if (newest !== undefined) lag.push(Date.now() - newest); // none yet: the sensors are still connecting
        }
        await new Promise((r) => setTimeout(r, 500));
      }
    })();
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    watching = false;
    ownDelay.disable();
    await Promise.all([watchLive, watchStore]);
    clearInterval(rss);
    const answers = abuser ? await stopAndCount(abuser) : {};
    await sensors.stop();
    if (agent.proc.exitCode !== null)
      throw new Error(`the agent ended (${agent.proc.exitCode}) during the ${abuse ? 'abuse' : 'control'} run`);
    return {
      pubackP99: percentile(sensors.latenciesMs, 99),
      pubackSpread: [50, 90, 95, 99.9].map((q) => `p${q} ${percentile(sensors.latenciesMs, q).toFixed(1)}`).join(', '),
      ownDelayP99: ownDelay.percentile(99) / 1e6,
      liveP99: percentile(live, 99),
      lagP99: percentile(lag, 99) / 1000,
      peakRss,
      acked: sensors.acked,
      answers,
    };
  } finally {
    await agent.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchAbuse(): Promise<void> {
  const control = await run(false);
  const abused = await run(true);
  printLimits(
    `abuse: 1,000 readings/s QoS 1 from 10 sensors, ${SECONDS} s, with ${STORED.toLocaleString('en-US')} readings stored, while one user and one address abuse the agent without pause; beside a control run without the abuse`,
    [
      { name: 'PUBACK p99', value: abused.pubackP99, unit: 'ms', max: 50, baselines: [control.pubackP99] },
      { name: '/health/live p99', value: abused.liveP99, unit: 'ms', max: 100, baselines: [control.liveP99] },
      {
        name: 'store lag p99 (age of the newest reading a query finds)',
        value: abused.lagP99,
        unit: 's',
        max: 2,
        baselines: [control.lagP99],
      },
      { name: 'peak RSS', value: abused.peakRss, unit: 'MB', max: 150, baselines: [control.peakRss] },
    ],
    ['control'],
  );
  note(`acknowledged readings: ${abused.acked} with the abuse, ${control.acked} in the control run`);
  note(`PUBACK wait (ms): ${abused.pubackSpread} with the abuse; ${control.pubackSpread} in the control run`);
  note(
    `the timing process's own event-loop delay p99 (in every PUBACK it times): ${abused.ownDelayP99.toFixed(1)} ms with the abuse, ${control.ownDelayP99.toFixed(1)} ms in the control run`,
  );
  const perSecond = Object.entries(abused.answers).map(([what, n]) => `${what} ${(n / SECONDS).toFixed(1)}`);
  note(`the abuser was answered, a second: ${perSecond.join(', ')}`);
}
