// Property: whatever the sequence of appends, drops under disk pressure, consumers added and removed
// and restarts, every reading reaches each consumer or is counted as dropped for it (never both,
// never lost unseen), each at most once between restarts, and no consumer's loop spins.
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ChunkBatch } from '../../agent/log/chunk-batch.js';
import { chunkDelivery } from '../../agent/consume/chunk-delivery.js';
import { ConsumerEngine } from '../../agent/consume/engine.js';
import { DurableLog } from '../../agent/log/durable-log.js';
import { cleanup, tempDir } from '../helpers/agent.js';
import { until } from '../helpers/servers.js';
import { quiet } from '../helpers/logger.js';

const NAMES = ['store', 'sink:a', 'sink:b'] as const;

type Step =
  | { op: 'append'; n: number }
  | { op: 'drop' }
  | { op: 'add'; name: (typeof NAMES)[number] }
  | { op: 'remove'; name: (typeof NAMES)[number] }
  | { op: 'restart' }
  | { op: 'settle' };

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 25 }).map((n) => ({ op: 'append' as const, n })) },
  { weight: 2, arbitrary: fc.constant({ op: 'drop' as const }) },
  { weight: 2, arbitrary: fc.constantFrom(...NAMES).map((name) => ({ op: 'add' as const, name })) },
  { weight: 1, arbitrary: fc.constantFrom(...NAMES).map((name) => ({ op: 'remove' as const, name })) },
  { weight: 1, arbitrary: fc.constant({ op: 'restart' as const }) },
  { weight: 2, arbitrary: fc.constant({ op: 'settle' as const }) },
);

interface Consumer {
  engine: ConsumerEngine<ChunkBatch>;
  /** Seqs handed over, per stretch between restarts. */
  stretches: number[][];
}

async function runSteps(steps: Step[]): Promise<void> {
  const dir = tempDir();
  const open = () =>
    DurableLog.open({
      dir: join(dir, 'log'),
      agentId: 'pi',
      maxDelayMs: 1,
      maxRecords: 7,
      deadLetters: { maxCount: 5, maxBytes: 1 << 20, payloadCapBytes: 64, whenFull: 'dropOldest' },
      logger: quiet,
    });
  let log = await open();
  const consumers = new Map<string, Consumer>();
  const start = async (name: string, c: Consumer) => {
    const stretch: number[] = [];
    c.stretches.push(stretch);
    const target = { write: async (b: ChunkBatch) => void stretch.push(...b.decode().lines.map((l) => JSON.parse(l).seq as number)) };
    c.engine = new ConsumerEngine(log, chunkDelivery(name, target, log), {
      name,
      maxRecords: 10,
      maxAgeMs: 0,
      window: 2,
      retry: { initialMs: 20, maxMs: 100 },
      logger: quiet,
    });
    await c.engine.start();
  };
  const settle = async () => {
    for (const name of consumers.keys())
      await until(() => log.cursor(name) >= log.lastSeq, 10_000, `${name} to reach seq ${log.lastSeq} (at ${log.cursor(name)})`);
  };
  try {
    for (const s of steps) {
      if (s.op === 'append')
        await Promise.all(
          Array.from(
            { length: s.n },
            (_, i) => log.append({ topic: 't', receivedAt: i, clockSynced: true, payloadJson: '{}', clientId: 'c', qos: 1 }).durable,
          ),
        );
      else if (s.op === 'drop') await log.dropOldestUnsent('disk pressure');
      else if (s.op === 'settle') await settle();
      else if (s.op === 'add' && !consumers.has(s.name)) {
        const c = { stretches: [] } as unknown as Consumer;
        consumers.set(s.name, c);
        await start(s.name, c);
      } else if (s.op === 'remove' && consumers.has(s.name)) {
        await consumers.get(s.name)!.engine.stop();
        consumers.delete(s.name);
        await log.dropConsumer(s.name);
      } else if (s.op === 'restart') {
        for (const c of consumers.values()) await c.engine.stop();
        await log.close();
        log = await open();
        for (const [name, c] of consumers) await start(name, c);
      }
    }
    await settle();
    for (const [name, c] of consumers) {
      const delivered = new Set(c.stretches.flat());
      const dropped = Object.values(log.droppedFor(name)).reduce((a, b) => a + b, 0);
      expect(delivered.size + dropped, `${name}: delivered ${delivered.size} + dropped ${dropped} of ${log.lastSeq}`).toBe(log.lastSeq);
      for (const stretch of c.stretches)
        expect(new Set(stretch).size, `${name} got a reading twice without a restart between`).toBe(stretch.length);
      expect(c.engine.status().spins, `${name} spun`).toBe(0);
    }
  } finally {
    for (const c of consumers.values()) await c.engine.stop();
    await log.close();
    cleanup(dir);
  }
}

describe('consumers of the durable log (property)', () => {
  it('every reading is delivered to each consumer once or counted as dropped for it, and nothing spins', async () => {
    await fc.assert(fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 30 }), runSteps), {
      numRuns: Number(process.env.PROPERTY_RUNS ?? 40),
    });
  }, 240_000);
});
