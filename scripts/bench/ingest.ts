// npm run bench -- ingest: end to end (validated, durable, stored) next to bare Aedes; PUBACK
// latency at a steady 5,000 msg/s; bytes written to disk per payload byte; RSS under load.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3-multiple-ciphers';
import { startMosquitto } from '../servers.js';
import { benchLoad, startBenchAgent } from './agent.js';
import { startPipeline } from './pipeline.js';
import { sensorPayload, type LoadOptions } from './load.js';
import { cpuMs, startProcess, type Started } from './processes.js';
import { median, percentile, printLimits, printTable, type Limit, type Row, note } from './report.js';

const BARE = resolve(import.meta.dirname, 'bare-aedes.js');
const PUBLISHERS = 8;
const ROUNDS = 3;
/**
 * Messages per publisher of a timed run: enough for 10-20 s of the agent, so that the store's last
 * wait (store.gatherMs, a latency of up to 1 s) weighs on the rate no more than a few percent.
 */
const MESSAGES = { 0: 100_000, 1: 50_000 } as const;
/** Messages per publisher of a warm-up run. */
const WARM_UP = 10_000;
const WA_RUNS = 2;

/** The schema the benchmark readings are validated against. */
const schema = {
  name: 'bench-env',
  topics: ['bench/+/+'],
  timestamp: 'ts',
  fields: {
    ts: { type: 'timestamp', required: true },
    sensor: { type: 'string', tag: true },
    temperature: { type: 'float', min: -40, max: 85, required: true },
    humidity: { type: 'float', min: 0, max: 100 },
    pressure: { type: 'float' },
    battery: { type: 'float' },
    rssi: { type: 'integer' },
    fw: { type: 'string' },
  },
};

function procStat(pid: number, file: 'io' | 'status', key: string): number {
  const line = readFileSync(`/proc/${pid}/${file}`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${key}:`));
  return Number(line?.split(/\s+/)[1] ?? 0);
}

/** Highest seq in the SQLite store at `path` (0 before it exists). */
export function storedLastSeq(path: string): number {
  try {
    const db = new Database(path, { readonly: true, fileMustExist: true });
    try {
      return (db.prepare('SELECT max(last_seq) AS s FROM block').get() as { s: number | null }).s ?? 0;
    } finally {
      db.close();
    }
  } catch {
    return 0;
  }
}

const load = (port: number, qos: 0 | 1, auth: boolean, extra: Partial<LoadOptions> = {}) =>
  benchLoad(port, qos, MESSAGES[qos], auth, extra);
const warmUp = (port: number, qos: 0 | 1, auth: boolean) => benchLoad(port, qos, WARM_UP, auth);

/**
 * CPU time per message, µs, of a server process (all threads, and its main thread) and of the load
 * generator (this process), from the moment the publishers are logged in (scrypt is not what this measures).
 */
class CpuPerMessage {
  private totals = { server: 0, main: 0, generator: 0 };
  private messages = 0;
  private at: { server: number; main: number; generator: NodeJS.CpuUsage } | undefined;

  constructor(private readonly pid: number) {}

  begin(): void {
    this.at = { server: cpuMs(this.pid), main: cpuMs(this.pid, this.pid), generator: process.cpuUsage() };
  }

  end(messages: number): void {
    if (!this.at) throw new Error('CpuPerMessage.end() before begin()');
    const generator = process.cpuUsage(this.at.generator);
    this.totals.server += cpuMs(this.pid) - this.at.server;
    this.totals.main += cpuMs(this.pid, this.pid) - this.at.main;
    this.totals.generator += (generator.user + generator.system) / 1000;
    this.messages += messages;
    this.at = undefined;
  }

  perMessage(): { server: number; main: number; generator: number } {
    const us = (ms: number) => (ms * 1000) / this.messages;
    return { server: us(this.totals.server), main: us(this.totals.main), generator: us(this.totals.generator) };
  }
}

export async function benchIngest(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-ingest-'));
  const storePath = join(dir, 'data', 'store.db');
  const bare = await startProcess([BARE]);
  const mosquitto = await startMosquitto();
  const pipeline = await startPipeline(join(dir, 'pipeline.db'));
  // QoS 0 held like QoS 1 when the log is behind, so that every reading sent is stored and counted.
  // The store's wait for a full transaction stays at gatherMs: at the end of a run the readings left
  // (fewer than batchSize) would otherwise wait for maxGatherMs (meant for a few readings a second).
  const edge: Started = await startBenchAgent(dir, {
    ingest: { schemas: [schema], mode: 'strict', qos0Overflow: 'block' },
    store: { maxGatherMs: 1000 },
  });
  const pid = edge.proc.pid!;
  let expectedSeq = 0;
  let peakRss = 0;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, procStat(pid, 'status', 'VmRSS'))), 50);

  async function storedUpTo(seq: number): Promise<void> {
    const deadline = Date.now() + 120_000;
    while (storedLastSeq(storePath) < seq) {
      if (Date.now() > deadline) throw new Error(`the store did not reach seq ${seq} (at ${storedLastSeq(storePath)})`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /**
   * Messages/s from the publishers' first message (as for bare Aedes) until every reading is validated,
   * committed and in the local store (`stored`), and until the last PUBACK (`published`: at QoS 1, on disk).
   */
  async function endToEnd(
    qos: 0 | 1,
    cpu?: CpuPerMessage,
    messagesPerPublisher: number = MESSAGES[qos],
  ): Promise<{ stored: number; published: number }> {
    let started = 0;
    const onConnected = () => {
      started = performance.now();
      cpu?.begin();
    };
    const result = await load(edge.port('mqtt'), qos, true, { onConnected, messagesPerPublisher });
    expectedSeq += result.messages + (qos === 0 ? PUBLISHERS : 0); // QoS 0 runs end with one QoS 1 marker each
    await storedUpTo(expectedSeq);
    cpu?.end(result.messages);
    return { stored: result.messages / ((performance.now() - started) / 1000), published: result.perSecond };
  }

  /** The Pi-style pipeline's readings/s, from the first message until its subscriber committed them all to SQLite. */
  async function pipelineRun(qos: 0 | 1): Promise<number> {
    const before = pipeline.stored();
    let started = 0;
    const result = await load(pipeline.broker.port, qos, false, { onConnected: () => (started = performance.now()) });
    const want = before + result.messages + (qos === 0 ? PUBLISHERS : 0);
    // Nothing is lost on the way (Mosquitto queues without limit here); a run that stops short is an error.
    for (let last = -1, still = 0; pipeline.stored() < want; await new Promise((r) => setTimeout(r, 5))) {
      still = pipeline.stored() === last ? still + 5 : 0;
      last = pipeline.stored();
      if (still > 30_000) throw new Error(`the Pi-style pipeline stored ${last - before} of ${want - before} readings`);
    }
    return result.messages / ((performance.now() - started) / 1000);
  }

  async function bareRun(qos: 0 | 1, cpu: CpuPerMessage): Promise<number> {
    const result = await load(bare.port('mqtt'), qos, false, { onConnected: () => cpu.begin() });
    cpu.end(result.messages);
    return result.perSecond;
  }

  const rows: Row[] = [];
  const limits: Limit[] = [];
  const cpu: string[] = [];
  try {
    for (const qos of [0, 1] as const) {
      await warmUp(bare.port('mqtt'), qos, false);
      await warmUp(mosquitto.port, qos, false);
      await endToEnd(qos, undefined, WARM_UP);
      const baseline: number[] = [];
      const mosquittoRates: number[] = [];
      const pipelineRates: number[] = [];
      const ours: { stored: number; published: number }[] = [];
      const bareCpu = new CpuPerMessage(bare.proc.pid!);
      const edgeCpu = new CpuPerMessage(pid);
      // Interleaved, so that drift on a shared machine hits every side alike.
      for (let round = 0; round < ROUNDS; round++) {
        baseline.push(await bareRun(qos, bareCpu));
        mosquittoRates.push((await load(mosquitto.port, qos, false)).perSecond);
        pipelineRates.push(await pipelineRun(qos));
        ours.push(await endToEnd(qos, edgeCpu));
      }
      const stored = median(ours.map((o) => o.stored));
      const target = qos === 1 ? 0.6 : 0.7;
      rows.push({
        name: `QoS ${qos} stored msg/s`,
        baselineName: 'bare Aedes',
        baseline: median(baseline),
        value: stored,
        target,
        higherIsBetter: true,
      });
      rows.push({
        name: `QoS ${qos} stored msg/s`,
        baselineName: 'Pi-style pipeline',
        baseline: median(pipelineRates),
        value: stored,
        target: 2,
        higherIsBetter: true,
      });
      if (qos === 1)
        rows.push({
          name: 'durable QoS 1 publish msg/s',
          baselineName: 'Mosquitto (no persistence)',
          baseline: median(mosquittoRates),
          value: median(ours.map((o) => o.published)),
          target: 1.5,
          higherIsBetter: true,
        });
      const [bareCost, edgeCost] = [bareCpu.perMessage(), edgeCpu.perMessage()];
      limits.push({
        name: `CPU per ${qos === 1 ? 'durable ' : ''}reading, QoS ${qos} (max: 2x bare Aedes)`,
        value: edgeCost.server,
        unit: 'µs',
        max: 2 * bareCost.server,
        baselines: [bareCost.server],
      });
      cpu.push(cpuLine(qos, bareCost, edgeCost, target * median(baseline)));
    }

    // Write amplification over QoS 1 runs: bytes the agent wrote to storage per payload byte. Over
    // several runs, because one SQLite checkpoint (4 MB) more or less at the window's edges moves a
    // single run's figure by 0.2x.
    const writtenBefore = procStat(pid, 'io', 'write_bytes');
    let waMessages = 0;
    for (let run = 0; run < WA_RUNS; run++) waMessages += (await load(edge.port('mqtt'), 1, true)).messages;
    expectedSeq += waMessages;
    await storedUpTo(expectedSeq);
    await new Promise((r) => setTimeout(r, 1000)); // let writeback of these runs reach the disk accounting
    const written = procStat(pid, 'io', 'write_bytes') - writtenBefore;
    const payloadBytes = waMessages * sensorPayload().length;

    // PUBACK latency at a steady 5,000 msg/s for 10 s.
    const steady = await load(edge.port('mqtt'), 1, true, { messagesPerPublisher: 6250, ratePerSecond: 5000 });
    expectedSeq += steady.messages;

    limits.push(
      { name: 'PUBACK p50 at 5,000 msg/s', value: percentile(steady.latenciesMs, 50), unit: 'ms', max: 25 },
      { name: 'PUBACK p99 at 5,000 msg/s', value: percentile(steady.latenciesMs, 99), unit: 'ms', max: 25 },
      { name: 'disk bytes written per payload byte', value: written / payloadBytes, unit: 'x', max: 3 },
      { name: 'peak RSS under load', value: peakRss / 1024, unit: 'MB', max: 150 },
    );
  } finally {
    clearInterval(sampler);
    await Promise.all([bare.stop(), edge.stop(), mosquitto.stop(), pipeline.stop()]);
    rmSync(dir, { recursive: true, force: true });
  }
  const perRun = (qos: 0 | 1) => (PUBLISHERS * MESSAGES[qos]).toLocaleString('en-US');
  printTable(
    `ingest: ${PUBLISHERS} publishers (${perRun(0)} messages a QoS 0 run, ${perRun(1)} a QoS 1 run), ${sensorPayload().length}-byte JSON validated (strict schema), fsync'd, stored in SQLite (QoS 0 overflow: block); median of ${ROUNDS}; baselines: bare Aedes and Mosquitto (no persistence, publish only), the Pi-style pipeline (Mosquitto + a Python paho subscriber writing SQLite in 1,000-row / 100 ms WAL batches, not durable), each measured in the same rounds`,
    rows,
  );
  printLimits('ingest: absolute targets', limits, ['bare Aedes']);
  note(`\nCPU per message (all on these ${availableParallelism()} cores):\n${cpu.join('\n')}`);
}

/** Where the CPU went, and the most messages/s these cores could give at that cost. */
function cpuLine(
  qos: 0 | 1,
  bare: ReturnType<CpuPerMessage['perMessage']>,
  edge: ReturnType<CpuPerMessage['perMessage']>,
  needed: number,
): string {
  const us = (n: number) => `${n.toFixed(1)} µs`;
  const ceiling = (availableParallelism() * 1e6) / (edge.server + edge.generator);
  return (
    `QoS ${qos}: bare Aedes ${us(bare.server)} + load generator ${us(bare.generator)}; ` +
    `edge-agent ${us(edge.server)} (main thread ${us(edge.main)}, other threads ${us(edge.server - edge.main)}) + load generator ${us(edge.generator)}; ` +
    `at that cost the cores give at most ${Math.round(ceiling).toLocaleString('en-US')} msg/s (the target needs ${Math.round(needed).toLocaleString('en-US')})`
  );
}
