// npm run bench -- broker: MQTT messages/s through the embedded broker (auth + ACL on) next to bare Aedes.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { benchLoad, startBenchAgent } from './agent.js';
import { sensorPayload } from './load.js';
import { startProcess, type Started } from './processes.js';
import { median, printTable, type Row } from './report.js';

const BARE = resolve(import.meta.dirname, 'bare-aedes.js');
const ROUNDS = 5;
const MESSAGES = { 0: 40_000, 1: 15_000 } as const;

async function measure(server: Started, qos: 0 | 1, auth: boolean): Promise<number> {
  return (await benchLoad(server.port('mqtt'), qos, MESSAGES[qos], auth)).perSecond;
}

export async function benchBroker(): Promise<Row[]> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-broker-'));
  const bare = await startProcess([BARE]);
  const edge = await startBenchAgent(dir, {}, 'broker-only');
  const rows: Row[] = [];
  try {
    for (const qos of [0, 1] as const) {
      const baseline: number[] = [];
      const ours: number[] = [];
      await measure(bare, qos, false); // warm-up: JIT and connection set-up, not counted
      await measure(edge, qos, true);
      // Interleave rounds so drift on a shared machine hits both sides alike.
      for (let round = 0; round < ROUNDS; round++) {
        baseline.push(await measure(bare, qos, false));
        ours.push(await measure(edge, qos, true));
      }
      rows.push({
        name: `QoS ${qos} msg/s`,
        baselineName: 'bare Aedes',
        baseline: median(baseline),
        value: median(ours),
        target: 0.9,
        higherIsBetter: true,
      });
    }
  } finally {
    await Promise.all([bare.stop(), edge.stop()]);
    rmSync(dir, { recursive: true, force: true });
  }
  printTable(
    `broker: 8 publishers, ${sensorPayload().length}-byte JSON, no subscribers, median of ${ROUNDS} after a warm-up; baseline = bare Aedes, ours = the embedded broker as configured (login + ACL), without ingest`,
    rows,
  );
  return rows;
}
