// npm run bench -- sync: drain a backlog of 1,000,000 readings to PostgreSQL and to InfluxDB, next
// to a raw baseline of the same rows in the same run (COPY with pg; plain POSTs of the same line
// protocol); peak RSS while draining; how long readings published during the drain take to arrive.
import { DurableLog } from '../../agent/log/index.js';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import mqtt from 'mqtt';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { askAgent, controlSocketPath } from '../../agent/control/socket.js';
import type { SinkStatus } from '../../agent/consume/sinks/index.js';
import { OutBatch } from '../../agent/consume/sinks/record.js';
import type { SchemaInfo } from '../../agent/consume/sinks/sink.js';
import { toLine } from '../../agent/consume/sinks/influx/line-protocol.js';
import { BASE_COLUMNS, copyRows } from '../../agent/consume/sinks/postgres/copy.js';
import { createDatabase, PG_PASSWORD, startInfluxd } from '../servers.js';
import { BENCH_USER, startBenchAgent } from './agent.js';
import { cpuMs } from './processes.js';
import { percentile, printLimits, printTable, type Limit, type Row, note } from './report.js';
import { createLogger } from '../../agent/lib/logger.js';

const RECORDS = Number(process.env.BENCH_SYNC_RECORDS ?? 1_000_000);
/** BENCH_SYNC_SINKS=influx (or postgres) runs one side only, when working on it. */
const SINKS = (process.env.BENCH_SYNC_SINKS ?? 'postgres,influx').split(',');
const BATCH = 5000;
const AGENT_ID = 'bench-agent';

const schema = {
  name: 'bench-env',
  topics: ['bench/+/+'],
  timestamp: 'ts',
  fields: {
    ts: 'timestamp',
    sensor: { type: 'string', tag: true },
    temperature: 'float',
    humidity: 'float',
    pressure: 'float',
    battery: 'float',
    rssi: 'integer',
    fw: 'string',
  },
};
const schemaInfo: SchemaInfo = {
  measurement: 'bench-env',
  tags: ['sensor'],
  timestampField: 'ts',
  fields: {
    ts: 'timestamp',
    sensor: 'string',
    temperature: 'float',
    humidity: 'float',
    pressure: 'float',
    battery: 'float',
    rssi: 'integer',
    fw: 'string',
  },
};
const quiet = createLogger('silent');

/** The benchmark's log; chunks as the agent writes them under load (buffer.maxRecords readings each). */
const openBacklog = (dataDir: string) =>
  DurableLog.open({
    dir: join(dataDir, 'log'),
    agentId: AGENT_ID,
    maxDelayMs: 5,
    maxRecords: 1000,
    deadLetters: { maxCount: 10, maxBytes: 1 << 20, payloadCapBytes: 4096, whenFull: 'dropOldest' },
    logger: quiet,
  });

/** A backlog as an outage leaves it: readings an hour old, 8 sensors, in the agent's log. */
async function prepareBacklog(dataDir: string): Promise<void> {
  const log = await openBacklog(dataDir);
  const start = Date.now() - 3_600_000;
  let last: Promise<void> = Promise.resolve();
  for (let i = 0; i < RECORDS; i++) {
    const ts = start + Math.floor(i / 8) * 10;
    const payload = {
      ts,
      sensor: `bme280-${i % 8}`,
      temperature: 21 + (i % 100) / 10,
      humidity: 48.2,
      pressure: 1013.25,
      battery: 3.71,
      rssi: -67,
      fw: '1.4.2',
    };
    last = log.append({
      topic: `bench/${BENCH_USER.name}/sensor-${i % 8}`,
      receivedAt: ts,
      clockSynced: true,
      deviceTime: ts,
      payloadJson: JSON.stringify(payload),
      clientId: `sensor-${i % 8}`,
      schema: 'bench-env@1',
      qos: 1,
    }).durable;
    if (i % 10_000 === 9_999) await last;
  }
  await last;
  await log.close();
}

/** Every record of the backlog, a batch at a time, as the sinks see them. */
async function* backlogBatches(dataDir: string): AsyncGenerator<OutBatch> {
  const log = await openBacklog(dataDir);
  await log.registerConsumer('bench-baseline');
  try {
    for (let after = 0; ;) {
      const batch = await log.readBatch('bench-baseline', after, BATCH);
      if (!batch) return;
      yield OutBatch.of(batch.lines, AGENT_ID);
      after = batch.lastSeq;
    }
  } finally {
    await log.close();
  }
}

/** Raw COPY of the same rows into a table like the agent's (same keys and index): only the COPYs are timed. */
async function rawCopy(dataDir: string, db: { name: string }): Promise<number> {
  const client = new pg.Client({ host: '127.0.0.1', user: 'edge_test', password: PG_PASSWORD, database: db.name });
  await client.connect();
  await client.query('CREATE TABLE baseline (LIKE telemetry INCLUDING ALL)');
  let ms = 0;
  for await (const records of backlogBatches(dataDir)) {
    const rows = copyRows(records, []);
    const t = performance.now();
    await pipeline(Readable.from([rows]), client.query(copyFrom(`COPY baseline (${BASE_COLUMNS.join(', ')}) FROM STDIN`)));
    ms += performance.now() - t;
  }
  await client.end();
  return (RECORDS * 1000) / ms;
}

/** Plain (uncompressed) POSTs of the same line protocol, batch by batch: only the POSTs are timed. */
async function rawPost(dataDir: string, influxUrl: string, influxPid: number): Promise<{ rate: number; serverCpuUsPerRecord: number }> {
  const agent = new http.Agent({ keepAlive: true });
  let ms = 0;
  let serverCpu = 0;
  for await (const records of backlogBatches(dataDir)) {
    const body = Array.from(
      { length: records.length },
      (_, i) =>
        (toLine(records.parsed(i), schemaInfo, { measurement: 'mqtt', agentTag: 'agent', topicTag: 'topic' }) as { line: string }).line,
    ).join('\n');
    const t = performance.now();
    const cpu = cpuMs(influxPid);
    await new Promise<void>((resolve, reject) => {
      const req = http.request(`${influxUrl}/write?db=baseline&precision=ns`, { method: 'POST', agent }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 204 ? resolve() : reject(new Error(`baseline POST: HTTP ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end(body);
    });
    ms += performance.now() - t;
    serverCpu += cpuMs(influxPid) - cpu;
  }
  agent.destroy();
  return { rate: (RECORDS * 1000) / ms, serverCpuUsPerRecord: (serverCpu * 1000) / RECORDS };
}

interface Drain {
  recordsPerSec: number;
  /** The agent's CPU time per reading drained, µs. */
  cpuUsPerRecord: number;
  /** The share of it on the agent's main thread (the event loop), µs. */
  mainCpuUsPerRecord: number;
  /** The database server's CPU time per reading meanwhile, µs (when its pid is known). */
  serverCpuUsPerRecord: number;
  peakRssMb: number;
  liveP99Ms: number;
  liveSamples: number;
  pubackP99Ms: number;
}

const rssKb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);

const cpuOf = (d: Drain) => `${d.cpuUsPerRecord.toFixed(1)} µs (main thread ${d.mainCpuUsPerRecord.toFixed(1)} µs)`;

/** Start the agent on a copy of the backlog with one sink; time the drain; meanwhile publish live readings. */
async function drain(
  dataDir: string,
  sink: Record<string, unknown>,
  arrivals: () => Promise<Set<number>>,
  serverPid?: number,
): Promise<Drain> {
  const dir = mkdtempSync(join(tmpdir(), 'edge-bench-sync-'));
  cpSync(dataDir, join(dir, 'data'), { recursive: true });
  const agent = await startBenchAgent(dir, {
    agent: { id: AGENT_ID, dataDir: join(dir, 'data') },
    ingest: { schemas: [schema] },
    store: { backend: 'none' },
    rollups: { enabled: false },
    sinks: [sink],
  });
  const started = performance.now();
  const pid = agent.proc.pid!;
  const serverCpu = () => (serverPid ? cpuMs(serverPid) : NaN);
  const cpuAtStart = { all: cpuMs(pid), main: cpuMs(pid, pid), server: serverCpu() };
  let cpuAtDrained = cpuAtStart;
  let peakKb = 0;
  const sampler = setInterval(() => (peakKb = Math.max(peakKb, rssKb(agent.proc.pid!))), 100);
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${agent.port('mqtt')}`, {
    username: BENCH_USER.name,
    password: BENCH_USER.password,
  });
  const latencies: number[] = [];
  /** How long the live readings' PUBACKs took: does a drain slow ingest down? */
  const pubacks: number[] = [];
  const pending = new Map<number, number>();
  let n = 0;
  const publisher = setInterval(() => {
    const id = n++;
    const sentAt = performance.now();
    pending.set(id, sentAt);
    client.publish(`bench/${BENCH_USER.name}/live`, JSON.stringify({ ts: Date.now(), sensor: 'live', temperature: id }), { qos: 1 }, () =>
      pubacks.push(performance.now() - sentAt),
    );
  }, 250);
  let drainedAt = 0;
  try {
    for (;;) {
      const arrived = pending.size ? await arrivals() : new Set<number>();
      for (const [id, sentAt] of pending) {
        if (arrived.has(id)) {
          latencies.push(performance.now() - sentAt);
          pending.delete(id);
        }
      }
      const [status] = ((await askAgent(controlSocketPath(join(dir, 'data')), '/sync/status')) as { sinks: SinkStatus[] }).sinks;
      const backlogLeft = status.lagRecords - pending.size;
      if (!drainedAt && backlogLeft <= 0) {
        drainedAt = performance.now();
        cpuAtDrained = { all: cpuMs(pid), main: cpuMs(pid, pid), server: serverCpu() };
      }
      if (drainedAt && pending.size === 0) break;
      if (performance.now() - started > 600_000) throw new Error(`drain did not finish: ${JSON.stringify(status)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    clearInterval(publisher);
    clearInterval(sampler);
    await client.endAsync();
    await agent.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    recordsPerSec: (RECORDS * 1000) / (drainedAt - started),
    cpuUsPerRecord: ((cpuAtDrained.all - cpuAtStart.all) * 1000) / RECORDS,
    mainCpuUsPerRecord: ((cpuAtDrained.main - cpuAtStart.main) * 1000) / RECORDS,
    serverCpuUsPerRecord: ((cpuAtDrained.server - cpuAtStart.server) * 1000) / RECORDS,
    peakRssMb: peakKb / 1024,
    liveP99Ms: percentile(latencies, 99),
    liveSamples: latencies.length,
    pubackP99Ms: percentile(pubacks, 99),
  };
}

export async function benchSync(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'edge-bench-backlog-'));
  const db = await createDatabase();
  const influx = await startInfluxd();
  try {
    console.log(`sync: preparing a backlog of ${RECORDS.toLocaleString('en-US')} readings ...`);
    await prepareBacklog(join(work, 'data'));
    await influx.createDatabase('telemetry');
    await influx.createDatabase('baseline');

    const sides: { label: string; baseline: number; drain: Drain }[] = [];
    if (SINKS.includes('postgres')) {
      const drained = await drain(
        join(work, 'data'),
        { name: 'cloud', type: 'postgres', url: db.url, password: PG_PASSWORD },
        async () =>
          new Set(
            (
              await db.query<{ n: number }>(`SELECT (payload->>'temperature')::int AS n FROM telemetry WHERE topic = $1`, [
                `bench/${BENCH_USER.name}/live`,
              ])
            ).map((r) => r.n),
          ),
      );
      sides.push({ label: 'PostgreSQL', baseline: await rawCopy(join(work, 'data'), db), drain: drained });
    }
    let influxd = '';
    if (SINKS.includes('influx')) {
      const drained = await drain(
        join(work, 'data'),
        { name: 'metrics', type: 'influx', url: influx.url, version: 1, database: 'telemetry' },
        async () => {
          const body = (await influx.query(`SELECT temperature FROM "telemetry".."bench-env" WHERE "sensor" = 'live'`)) as {
            results: { series?: { values: [number, number][] }[] }[];
          };
          return new Set((body.results[0].series?.[0]?.values ?? []).map((v) => v[1]));
        },
        influx.pid,
      );
      const post = await rawPost(join(work, 'data'), influx.url, influx.pid!);
      sides.push({ label: 'InfluxDB', baseline: post.rate, drain: drained });
      influxd = `; influxd ${drained.serverCpuUsPerRecord.toFixed(1)} µs (agent's drain), ${post.serverCpuUsPerRecord.toFixed(1)} µs (baseline POSTs)`;
    }

    const rows: Row[] = sides.map((side) => ({
      name: `${side.label} records/s`,
      baselineName: side.label === 'PostgreSQL' ? 'raw COPY' : 'raw line-protocol POSTs',
      baseline: side.baseline,
      value: side.drain.recordsPerSec,
      target: 1,
      higherIsBetter: true,
    }));
    printTable(
      `drain of ${RECORDS.toLocaleString('en-US')} readings (baseline: raw COPY / plain POSTs of the same rows, ${BATCH} per request)`,
      rows,
    );
    const limits: Limit[] = [
      ...sides.map((side) => ({ name: `peak RSS draining to ${side.label}`, value: side.drain.peakRssMb, unit: 'MB', max: 200 })),
      ...sides.map((side) => ({
        name: `live p99 during the ${side.label} drain (${side.drain.liveSamples} readings)`,
        value: side.drain.liveP99Ms / 1000,
        unit: 's',
        max: 5,
      })),
    ];
    printLimits('while draining', limits);
    // The agent and the database share this machine's cores: what each reading costs each of them.
    const during = (f: (side: (typeof sides)[number]) => string) => sides.map((side) => `${f(side)} (${side.label} drain)`).join(', ');
    note(
      `\nPUBACK p99 of the live readings: ${during((side) => `${side.drain.pubackP99Ms.toFixed(1)} ms`)}` +
        `\nCPU per reading: agent ${during((side) => cpuOf(side.drain))}${influxd}`,
    );
  } finally {
    await influx.stop();
    await db.drop();
    rmSync(work, { recursive: true, force: true });
  }
}
