import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ChunkBatch } from '../../agent/log/chunk-batch.js';
import { ConsumerEngine } from '../../agent/consume/engine.js';
import { RecordFault } from '../../agent/lib/faults.js';
import { DurableLog } from '../../agent/log/durable-log.js';
import type { LocalStore } from '../../agent/consume/store/index.js';
import { chunkDelivery } from '../../agent/consume/chunk-delivery.js';
import { cleanup, tempDir } from '../helpers/agent.js';
import { until } from '../helpers/servers.js';
import { quiet } from '../helpers/logger.js';

const opened: { dir: string; log: DurableLog; consumer?: ConsumerEngine<ChunkBatch> }[] = [];
afterEach(async () => {
  for (const o of opened.splice(0)) {
    await o.consumer?.stop();
    await o.log.close();
    cleanup(o.dir);
  }
});

async function setup(
  batch: number,
  gatherMs: number,
  extra: { inFlight?: number; handle?: (b: ChunkBatch) => Promise<void> | void; retryMs?: number; maxBytes?: number } = {},
) {
  const dir = tempDir();
  const log = await DurableLog.open({
    dir: join(dir, 'log'),
    agentId: 'pi',
    maxDelayMs: 2,
    maxRecords: 50,
    deadLetters: { maxCount: 5, maxBytes: 1 << 20, payloadCapBytes: 64, whenFull: 'dropOldest' },
    logger: quiet,
  });
  const handled: { at: number; first: number; count: number }[] = [];
  const handle = (b: ChunkBatch) => {
    handled.push({ at: Date.now(), first: b.firstSeq, count: b.count });
    return extra.handle?.(b);
  };
  // The store's delivery over a store that is only `handle`.
  const store = { kind: 'test', write: async (b: ChunkBatch) => handle(b) } as unknown as LocalStore;
  const retry = extra.retryMs ?? 250;
  const consumer = new ConsumerEngine(log, chunkDelivery('store', store, log, extra.maxBytes), {
    name: 'store',
    maxRecords: batch,
    maxAgeMs: gatherMs,
    window: extra.inFlight ?? 1,
    retry: { initialMs: retry, maxMs: retry * 4 },
    logger: quiet,
  });
  await consumer.start();
  opened.push({ dir, log, consumer });
  const append = (n: number, payload = (_i: number) => '{}') =>
    Promise.all(
      Array.from(
        { length: n },
        (_, i) => log.append({ topic: 't', receivedAt: i, clockSynced: true, payloadJson: payload(i), clientId: 'c', qos: 1 }).durable,
      ),
    );
  return { log, handled, append, consumer };
}

describe('consumer engine: batching', () => {
  it('holds a few readings up to gatherMs, then writes them in one batch', async () => {
    const { handled, append } = await setup(100, 300);
    const start = Date.now();
    await append(5);
    await append(5);
    expect(await until(() => handled.length > 0, 3000)).toBe(true);
    expect(handled[0].at - start).toBeGreaterThanOrEqual(280);
    expect(handled).toEqual([expect.objectContaining({ first: 1, count: 10 })]);
  });

  it('writes full batches without waiting, and holds only the short rest', async () => {
    const { handled, append, consumer } = await setup(50, 60_000);
    await append(120); // chunks of 50: two full batches and 20 left over
    expect(await until(() => handled.length === 2, 5000)).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    expect(handled.map((h) => [h.first, h.count])).toEqual([
      [1, 50],
      [51, 50],
    ]);
    // Control: the rest was there to write, held for its age; a flush writes it now.
    consumer.flush();
    await until(() => handled.length === 3, 5000, 'the rest written');
    expect(handled[2]).toMatchObject({ first: 101, count: 20 });
  });

  it('counts the wait from the commit: readings that waited gatherMs while a write ran go out at once', async () => {
    let calls = 0;
    let firstEnded = 0;
    const gatherMs = 2000;
    const firstWrite = () => new Promise<void>((r) => setTimeout(() => ((firstEnded = Date.now()), r()), gatherMs + 500));
    const { handled, append } = await setup(50, gatherMs, { handle: () => (calls++ === 0 ? firstWrite() : undefined) });
    await append(70); // a full batch of 50, and 20 that wait
    expect(await until(() => handled.length === 2, 5000)).toBe(true);
    expect(handled.map((h) => [h.first, h.count])).toEqual([
      [1, 50],
      [51, 20],
    ]);
    // The 20 were committed with the first 50: by the time that write ended they had waited longer
    // than gatherMs, so they go out then rather than another gatherMs later.
    expect(handled[1].at - firstEnded).toBeLessThan(gatherMs);
  });

  it('hands over the next full batch while one is being written; the cursor moves in order', async () => {
    const release: (() => void)[] = [];
    const { log, handled, append } = await setup(50, 60_000, { inFlight: 2, handle: () => new Promise<void>((r) => release.push(r)) });
    await append(150);
    expect(await until(() => handled.length === 2, 5000)).toBe(true);
    await new Promise((r) => setTimeout(r, 200));
    expect(handled.map((h) => h.first)).toEqual([1, 51]); // two out at once, the third waits
    expect(log.cursor('store')).toBe(0);
    release[1](); // the second is done first: the cursor still waits for the first
    await new Promise((r) => setTimeout(r, 100));
    expect(log.cursor('store')).toBe(0);
    release[0]();
    expect(await until(() => log.cursor('store') === 100 && handled.length === 3, 5000)).toBe(true);
    release[2]();
    expect(await until(() => log.cursor('store') === 150, 5000)).toBe(true);
  });
});

describe("consumer engine: the store's byte cap", () => {
  it('hands the store no more compressed chunk bytes at once than maxBatchBytes (one chunk at the least)', async () => {
    const { handled, append, consumer } = await setup(1000, 10_000, { maxBytes: 64 * 1024 });
    // Ten commits of one incompressible 27 KB reading each: ten chunks.
    for (let i = 0; i < 10; i++) await append(1, () => JSON.stringify({ pad: randomBytes(20_000).toString('base64') }));
    await append(990); // fills the batch by count, so gathering does not wait
    expect(await consumer.caughtUp(1000, 5000)).toBe(true);
    expect(handled.map((h) => [h.first, h.count])).toEqual([
      [1, 3],
      [4, 3],
      [7, 3],
      [10, 991], // the last big chunk and the small ones after it fit
    ]);
  });
});

describe('consumer engine: faults', () => {
  it('halves a batch refused for what a reading holds until it stands alone: dead-lettered with the consumer name, the rest handed over once', async () => {
    const poison = (b: ChunkBatch) =>
      b
        .decode()
        .records()
        .some((r) => (r.payload as { bad?: boolean }).bad);
    const stored: number[] = [];
    const { log, append, consumer } = await setup(100, 50, {
      handle: (b) => {
        if (poison(b)) throw new RecordFault('refused: bad');
        stored.push(
          ...b
            .decode()
            .records()
            .map((r) => r.seq),
        );
      },
    });
    await append(40, (i) => (i === 12 || i === 31 ? '{"bad":true}' : `{"i":${i}}`));
    expect(await consumer.caughtUp(40, 5000)).toBe(true);
    expect(stored.sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1).filter((s) => s !== 13 && s !== 32));
    const letters = await log.deadLetters(10);
    expect(letters.map((d) => [d.consumer, d.seq, d.reasons[0].message, Buffer.from(d.payload, 'base64').toString()])).toEqual([
      ['store', 32, 'refused: bad', '{"bad":true}'],
      ['store', 13, 'refused: bad', '{"bad":true}'],
    ]);
    expect(consumer.status()).toMatchObject({ state: 'ok', deadLettered: 2, lagRecords: 0 });
  });

  it('retries an error of the moment with backoff, reports retrying with the error, and goes on by itself once it passes', async () => {
    let failing = true;
    let attempts = 0;
    const { append, consumer, handled } = await setup(100, 20, {
      retryMs: 20,
      handle: () => {
        attempts++;
        if (failing) throw Object.assign(new Error('SQLITE_FULL: database or disk is full'), { code: 'SQLITE_FULL' });
      },
    });
    await append(5);
    expect(await until(() => attempts >= 3, 5000)).toBe(true);
    expect(consumer.status()).toMatchObject({
      state: 'retrying',
      lastError: { message: 'SQLITE_FULL: database or disk is full' },
      lagRecords: 5,
    });
    failing = false;
    expect(await consumer.caughtUp(5, 5000)).toBe(true);
    expect(consumer.status()).toMatchObject({ state: 'ok', lagRecords: 0, deadLettered: 0 });
    // The same batch was retried, not re-read in parts: every attempt covered readings 1-5.
    expect(handled.every((h) => h.first === 1 && h.count === 5)).toBe(true);
  });
});
