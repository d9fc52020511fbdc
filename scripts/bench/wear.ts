// npm run bench -- wear: what the SD card is sent per reading and per day at the rates sensors
// really send (10 sensors at 1 Hz, QoS 0 and 1) and at 100 and 1,000 readings/s, with the agent's
// data directory on ext4 on a loop device (the device's own count: the filesystem's journal and
// metadata included), next to the Pi-style pipeline (Mosquitto without persistence + a Python
// subscriber writing SQLite) in the same run. Root only.
// BENCH_WEAR_CASES=hobby: the Pi-style pipeline and 10 x 1 Hz only; fast: the pipeline and 100 and 1,000/s. BENCH_WEAR_SECONDS (300: at 10 readings/s the store and rollups write every 5 minutes; a count of 5 minutes, settled at both ends, holds about one write of each, as each 5 minutes of a day does): each case's measured time; BENCH_CARD_GB (32) and BENCH_CARD_WRITES (1000): the card.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hobbyPayload, loopDisk, measureWear, settleAgent, type WearRun } from '../wear.js';
import { BENCH_USER, benchTopic, startBenchAgent } from './agent.js';
import { startPipeline } from './pipeline.js';
import { printGrid, printLimits, type Limit } from './report.js';

const SECONDS = Number(process.env.BENCH_WEAR_SECONDS ?? 300);
/** The store's and rollups' first write (before they know the rate) falls in it, not in the count. */
const WARM_UP = 30;
const CARD_GB = Number(process.env.BENCH_CARD_GB ?? 32);
const CARD_WRITES = Number(process.env.BENCH_CARD_WRITES ?? 1000);
const PAYLOAD = 70;

interface Case {
  name: string;
  sensors: number;
  hz: number;
  qos: 0 | 1;
}

/** One case against the agent on its defaults, on a fresh filesystem. */
async function agentCase(c: Case): Promise<WearRun> {
  const disk = loopDisk(512);
  const dir = mkdtempSync(join(tmpdir(), 'bench-wear-'));
  const agent = await startBenchAgent(dir, { agent: { dataDir: join(disk.dir, 'data') } });
  try {
    const settle = settleAgent(join(disk.dir, 'data'));
    return await measureWear(
      disk,
      {
        port: agent.port('mqtt'),
        sensors: c.sensors,
        hz: c.hz,
        qos: c.qos,
        topic: benchTopic,
        payload: hobbyPayload,
        username: BENCH_USER.name,
        password: BENCH_USER.password,
      },
      WARM_UP,
      SECONDS,
      settle,
    );
  } finally {
    await agent.stop();
    disk.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The Pi-style pipeline: Mosquitto (no persistence) and Debian's python3-paho-mqtt writing SQLite in 100 ms WAL batches. */
async function pipelineCase(c: Case): Promise<WearRun> {
  const disk = loopDisk(512);
  try {
    const pipeline = await startPipeline(join(disk.dir, 'readings.db'));
    try {
      return await measureWear(
        disk,
        { port: pipeline.broker.port, sensors: c.sensors, hz: c.hz, qos: c.qos, topic: benchTopic, payload: hobbyPayload },
        WARM_UP,
        SECONDS,
        () => new Promise((r) => setTimeout(r, 500)),
      );
    } finally {
      await pipeline.stop();
    }
  } finally {
    disk.close();
  }
}

const years = (bytesPerDay: number) => (CARD_GB * 1e9 * CARD_WRITES) / bytesPerDay / 365;
const kb = (n: number) => `${(n / 1000).toFixed(2)} kB`;

export async function benchWear(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('npm run bench -- wear needs root (a loop device and mount)');
  const hobby = (qos: 0 | 1): Case => ({ name: `10 sensors x 1 Hz, QoS ${qos}`, sensors: 10, hz: 1, qos });
  const cases: Case[] = [
    hobby(0),
    hobby(1),
    { name: '100 readings/s (10 x 10 Hz), QoS 0', sensors: 10, hz: 10, qos: 0 },
    { name: '1,000 readings/s (20 x 50 Hz), QoS 0', sensors: 20, hz: 50, qos: 0 },
    { name: '100 readings/s (10 x 10 Hz), QoS 1', sensors: 10, hz: 10, qos: 1 },
    { name: '1,000 readings/s (20 x 50 Hz), QoS 1', sensors: 20, hz: 50, qos: 1 },
  ];
  const pipeline = await pipelineCase(hobby(1));
  const runs: [Case, WearRun][] = [];
  const chosen =
    process.env.BENCH_WEAR_CASES === 'hobby' ? cases.slice(0, 2) : process.env.BENCH_WEAR_CASES === 'fast' ? cases.slice(2) : cases;
  for (const c of chosen) {
    const run = await agentCase(c);
    console.log(`wear: ${c.name}: ${kb(run.bytesPerReading)} a reading${run.puback ? `, PUBACK p99 ${run.puback.p99.toFixed(0)} ms` : ''}`); // as it comes: a long run
    runs.push([c, run]);
  }

  const title = `wear: bytes the SD card is sent (ext4 on a loop device, /sys/block/loopN/stat), ${PAYLOAD}-byte readings, ${SECONDS} s a case after ${WARM_UP} s, the store and rollups made to write what they gathered at both ends; card life for a ${CARD_GB} GB card rated ${CARD_WRITES} full writes`;
  const rows = [
    ['case', 'per reading', 'per day', 'card life', 'PUBACK p50 / p99'],
    [
      'Pi-style pipeline (Mosquitto + Python SQLite), 10 x 1 Hz',
      kb(pipeline.bytesPerReading),
      `${(pipeline.bytesPerDay / 1e6).toFixed(0)} MB`,
      `${years(pipeline.bytesPerDay).toFixed(1)} years`,
      '- (not durable)',
    ],
  ];
  for (const [c, r] of runs)
    rows.push([
      `edge-agent, ${c.name}`,
      kb(r.bytesPerReading),
      `${(r.bytesPerDay / 1e6).toFixed(0)} MB`,
      `${years(r.bytesPerDay).toFixed(1)} years`,
      r.puback ? `${r.puback.p50.toFixed(0)} / ${r.puback.p99.toFixed(0)} ms` : '-',
    ]);
  printGrid(title, rows);

  const limits: Limit[] = runs.flatMap(([c, r]): Limit[] => {
    if (c.hz !== 1)
      return [{ name: `${c.name}: bytes per reading (3x the payload)`, value: r.bytesPerReading, unit: 'B', max: 3 * PAYLOAD }];
    if (c.qos === 0) return [{ name: '10 x 1 Hz, QoS 0: bytes per reading', value: r.bytesPerReading, unit: 'B', max: 600 }];
    return [
      {
        name: '10 x 1 Hz, QoS 1: bytes per reading (max: the Pi-style pipeline, same run)',
        value: r.bytesPerReading,
        unit: 'B',
        max: pipeline.bytesPerReading,
      },
      { name: '10 x 1 Hz, QoS 1: PUBACK p99', value: r.puback?.p99 ?? Infinity, unit: 'ms', max: 250 },
    ];
  });
  printLimits('wear: targets', limits);
}
