// npm run bench -- retention: QoS 1 ingest, validated, durable and stored, while retention deletes
// from the same SQLite store every second, next to the same agent without retention (the baseline),
// alternating in the same run; and the longest a pruning step held the store.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { benchLoad, startBenchAgent } from './agent.js';
import { storedLastSeq } from './ingest.js';
import { median, printLimits, printTable } from './report.js';
import type { Started } from './processes.js';

const ROUNDS = 3;
const MESSAGES = 25_000;
const PUBLISHERS = 8;

/** Readings/s from the first publish until all are in the local store. */
async function storedRate(agent: Started, storePath: string, expected: { seq: number }): Promise<number> {
  let started = 0;
  const result = await benchLoad(agent.port('mqtt'), 1, MESSAGES, true, { onConnected: () => (started = performance.now()) });
  expected.seq += result.messages;
  const deadline = Date.now() + 120_000;
  while (storedLastSeq(storePath) < expected.seq) {
    if (Date.now() > deadline) throw new Error(`the store did not reach seq ${expected.seq}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return result.messages / ((performance.now() - started) / 1000);
}

export async function benchRetention(): Promise<void> {
  const dirs = [mkdtempSync(join(tmpdir(), 'bench-keep-')), mkdtempSync(join(tmpdir(), 'bench-prune-'))];
  // A run's last readings (fewer than a transaction) are stored within gatherMs, not maxGatherMs.
  const store = { maxGatherMs: 1000 };
  const plain = await startBenchAgent(dirs[0], { store });
  // Every second, delete every reading older than a second: pruning runs all through the load.
  const pruning = await startBenchAgent(dirs[1], {
    log: { level: 'info' },
    store,
    retention: { schedule: '* * * * * *', store: [{ topics: ['#'], maxAge: '1s' }] },
  });
  const runs: { longestStallMs: number; storeDeleted: number; steps: number }[] = [];
  createInterface({ input: pruning.proc.stdout! }).on('line', (line) => {
    if (line.includes('retention deleted')) runs.push(JSON.parse(line));
  });
  const stores = dirs.map((d) => join(d, 'data', 'store.db'));
  const expected = [{ seq: 0 }, { seq: 0 }];
  const rates: [number[], number[]] = [[], []];
  try {
    for (const [i, agent] of [plain, pruning].entries()) await storedRate(agent, stores[i], expected[i]); // warm-up
    runs.length = 0;
    for (let round = 0; round < ROUNDS; round++) {
      for (const [i, agent] of [plain, pruning].entries()) rates[i].push(await storedRate(agent, stores[i], expected[i]));
    }
  } finally {
    await Promise.all([plain.stop(), pruning.stop()]);
    dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
  }
  const deleted = runs.reduce((n, r) => n + r.storeDeleted, 0);
  printTable(
    `retention: ${PUBLISHERS} publishers x ${MESSAGES.toLocaleString('en-US')} QoS 1 readings a run, until stored; with retention deleting every reading older than 1 s every second (${runs.length} runs, ${deleted.toLocaleString('en-US')} readings deleted) against the same agent without; median of ${ROUNDS}`,
    [
      {
        name: 'QoS 1 msg/s stored, while pruning',
        baselineName: 'without retention',
        baseline: median(rates[0]),
        value: median(rates[1]),
        target: 0.8,
        higherIsBetter: true,
      },
    ],
  );
  printLimits('retention: absolute targets', [
    { name: 'longest pruning step (store held)', value: Math.max(0, ...runs.map((r) => r.longestStallMs)), unit: 'ms', max: 250 },
  ]);
}
