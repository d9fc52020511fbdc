// Readings a consumer can no longer get (dropped under disk pressure, deleted before it was added)
// are passed over and counted, never spun on; a consumer with nothing to do waits; a reader that
// answers with nothing new is caught and backed off instead of freezing the agent.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ChunkBatch } from '../../agent/log/chunk-batch.js';
import { chunkDelivery } from '../../agent/consume/chunk-delivery.js';
import { ConsumerEngine, type Delivery } from '../../agent/consume/engine.js';
import { DELETED_BEFORE_ADDED, DurableLog, type DurableLogOptions } from '../../agent/log/durable-log.js';
import { cleanup, tempDir } from '../helpers/agent.js';
import { until } from '../helpers/servers.js';

const logged: { level: string; msg: string; o: object }[] = [];
const recorder = Object.fromEntries(
  ['debug', 'info', 'warn', 'error'].map((level) => [level, (o: object, msg: string) => logged.push({ level, msg, o })]),
) as unknown as DurableLogOptions['logger'];
const dirs: string[] = [];
const running: { stop(): Promise<void> }[] = [];
afterEach(async () => {
  for (const r of running.splice(0).reverse()) await r.stop();
  dirs.splice(0).forEach(cleanup);
  logged.length = 0;
});

async function openLog(dir?: string): Promise<{ dir: string; log: DurableLog }> {
  const d = dir ?? tempDir();
  if (!dir) dirs.push(d);
  const log = await DurableLog.open({
    dir: join(d, 'log'),
    agentId: 'pi',
    maxDelayMs: 2,
    maxRecords: 10,
    deadLetters: { maxCount: 5, maxBytes: 1 << 20, payloadCapBytes: 64, whenFull: 'dropOldest' },
    logger: recorder,
  });
  running.push({ stop: () => log.close() });
  return { dir: d, log };
}

/** Closed and opened again: what the journal held since the last checkpoint is in LevelDB now. */
async function checkpointed(open: { dir: string; log: DurableLog }): Promise<{ dir: string; log: DurableLog }> {
  await open.log.close();
  running.splice(running.length - 1, 1);
  return openLog(open.dir);
}

const append = (log: DurableLog, n: number) =>
  Promise.all(
    Array.from(
      { length: n },
      (_, i) => log.append({ topic: 't', receivedAt: i, clockSynced: true, payloadJson: `{"i":${i}}`, clientId: 'c', qos: 1 }).durable,
    ),
  );

/** A consumer of `log` that records the seqs it is handed; `reads` counts the reads it makes. */
async function consume(log: DurableLog, name: string, startAt?: 'oldest' | 'newest') {
  const seqs: number[] = [];
  let reads = 0;
  const base = chunkDelivery(
    name,
    { write: async (b: ChunkBatch) => void seqs.push(...b.decode().lines.map((l) => JSON.parse(l).seq as number)) },
    log,
  );
  const delivery: Delivery<ChunkBatch> = { ...base, read: (...a) => (reads++, base.read(...a)) };
  const engine = new ConsumerEngine(log, delivery, {
    name,
    maxRecords: 100,
    maxAgeMs: 0,
    window: 1,
    retry: { initialMs: 50, maxMs: 200 },
    logger: recorder,
    startAt,
  });
  await engine.start();
  running.push(engine);
  return { seqs, engine, reads: () => reads };
}

describe('readings a consumer can no longer get', () => {
  it('a consumer added after the others consumed everything starts at what the log holds, counts the rest, and gets every later reading', async () => {
    const { log } = await openLog();
    const store = await consume(log, 'store');
    await append(log, 25);
    await until(() => store.seqs.length === 25);
    await until(() => log.stats().chunks === 0, 5000, 'the store to let every chunk go');
    const sink = await consume(log, 'sink:new');
    expect(log.cursor('sink:new')).toBe(25);
    expect(log.droppedFor('sink:new')).toEqual({ [DELETED_BEFORE_ADDED]: 25 });
    expect(log.startOf('sink:new')).toMatchObject({ startAt: 'oldest', seq: 25 });
    await append(log, 3);
    await until(() => sink.seqs.length === 3);
    expect(sink.seqs).toEqual([26, 27, 28]);
    expect(store.seqs).toHaveLength(28);
  });

  it('a new consumer with startAt newest skips what the log holds and counts nothing; oldest gets it', async () => {
    const { log } = await openLog();
    await log.registerConsumer('store');
    await append(log, 12); // the store never reads: the log keeps all
    const oldest = await consume(log, 'sink:old');
    const newest = await consume(log, 'sink:new', 'newest');
    await until(() => oldest.seqs.length === 12);
    await append(log, 2);
    await until(() => newest.seqs.length === 2 && oldest.seqs.length === 14);
    expect(newest.seqs).toEqual([13, 14]);
    expect(oldest.seqs).toEqual(Array.from({ length: 14 }, (_, i) => i + 1));
    expect(log.droppedFor('sink:new')).toEqual({});
    expect(log.droppedFor('sink:old')).toEqual({});
  });

  it('the only chunk dropped under disk pressure: the consumer passes over it, says so once, waits without spinning, and a restart opens the log', async () => {
    const first = await openLog();
    await first.log.registerConsumer('store');
    await append(first.log, 1);
    // Only in the journal (and memory) until a checkpoint: dropping it would free nothing.
    expect(await first.log.dropOldestUnsent('disk pressure')).toBeNull();
    const { dir, log } = await checkpointed(first);
    const drop = await log.dropOldestUnsent('disk pressure');
    expect(drop?.perConsumer).toEqual({ store: 1 });
    const store = await consume(log, 'store');
    await until(() => log.cursor('store') === 1, 5000, 'the store past the dropped reading');
    const passed = logged.filter((l) => l.msg.startsWith('readings no longer in the log passed over'));
    expect(passed).toHaveLength(1);
    expect(passed[0].o).toMatchObject({ consumer: 'store', from: 1, to: 1 });
    // Nothing to do: it waits for the next commit. Reads over half a second: none (it was idle);
    // then the control: a reading comes and is read and handed over.
    const reads = store.reads();
    await new Promise((r) => setTimeout(r, 500));
    expect(store.reads()).toBe(reads);
    await append(log, 1);
    await until(() => store.seqs.length === 1);
    expect(store.seqs).toEqual([2]);
    expect(store.engine.status()).toMatchObject({ state: 'ok', spins: 0 });
    // Restart on that log, the same case left behind: it opens, and the consumer goes on.
    await store.engine.stop();
    await log.close();
    running.length = 0;
    const again = await openLog(dir);
    await again.log.registerConsumer('store');
    await append(again.log, 1);
    const dropped = await (await checkpointed(again)).log.dropOldestUnsent('disk pressure');
    expect(dropped?.perConsumer).toEqual({ store: 1 });
    await running[0].stop();
    running.length = 0;
    const third = await openLog(dir);
    const resumed = await consume(third.log, 'store');
    await append(third.log, 2);
    await until(() => resumed.seqs.length === 2);
    expect(resumed.seqs).toEqual([4, 5]);
    expect(third.log.droppedFor('store')).toEqual({ 'disk pressure': 2 });
  });

  it('a reader that keeps answering with nothing new is caught: the consumer is stuck, backs off, and the event loop stays free', async () => {
    const { log } = await openLog();
    await append(log, 5);
    let reads = 0;
    const broken: Delivery<{ lastSeq: number; count: number }> = {
      read: async (after) => (reads++, { lastSeq: after, count: 0 }), // a bug: no progress, no wait
      write: async () => {},
      split: async (b) => [b, b],
      refused: () => ({ time: 0, topic: '', clientId: '', payload: Buffer.alloc(0), reasons: [] }),
    };
    const engine = new ConsumerEngine(log, broken, {
      name: 'buggy',
      maxRecords: 100,
      maxAgeMs: 0,
      window: 1,
      retry: { initialMs: 50, maxMs: 200 },
      logger: recorder,
    });
    await engine.start();
    running.push(engine);
    // The control beside it: a timer keeps firing, and a healthy consumer of the same log gets its readings.
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 20);
    const healthy = await consume(log, 'store');
    await until(() => healthy.seqs.length === 5);
    await new Promise((r) => setTimeout(r, 1000));
    clearInterval(ticker);
    expect(ticks).toBeGreaterThan(20);
    expect(reads).toBeGreaterThanOrEqual(3);
    expect(reads).toBeLessThan(30); // backing off from 100 ms, doubling; a spin makes millions
    expect(engine.status()).toMatchObject({ state: 'stuck', spins: 1 });
    expect(engine.status().lastError?.message).toMatch(/turned 3 times without progress/);
    expect(logged.filter((l) => l.msg === 'consumer stuck')).toHaveLength(1);
  });
});

describe('a consumer that writes rarely when readings are few', () => {
  it('flush() writes what waits now; caughtUp() flushes first', async () => {
    const { log } = await openLog();
    const seqs: number[] = [];
    const engine = new ConsumerEngine(log, chunkDelivery('store', { write: async (b: ChunkBatch) => void seqs.push(b.lastSeq) }, log), {
      name: 'store',
      maxRecords: 1000,
      maxAgeMs: 60_000,
      idleAgeMs: 120_000,
      window: 1,
      retry: { initialMs: 50, maxMs: 200 },
      logger: recorder,
    });
    await engine.start();
    running.push(engine);
    await append(log, 3);
    await new Promise((r) => setTimeout(r, 300));
    expect(seqs).toEqual([]); // a minute's wait: nothing yet
    expect(await engine.caughtUp(log.lastSeq, 5000)).toBe(true);
    expect(seqs).toEqual([3]);
    await append(log, 2);
    engine.flush();
    await until(() => seqs.length === 2);
    expect(seqs).toEqual([3, 5]);
  });
});
