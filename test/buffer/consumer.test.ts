import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ChunkBatch } from '../../agent/buffer/chunk-batch.js';
import { startConsumer, type Consumer } from '../../agent/buffer/consumer.js';
import { DurableLog, type DurableLogOptions } from '../../agent/buffer/log.js';
import { cleanup, tempDir } from '../helpers/agent.js';

const quiet = { debug() {}, info() {}, warn() {}, error() {} } as unknown as DurableLogOptions['log'];
const opened: { dir: string; log: DurableLog; consumer?: Consumer }[] = [];
afterEach(async () => {
  for (const o of opened.splice(0)) {
    await o.consumer?.stop();
    await o.log.close();
    cleanup(o.dir);
  }
});

async function setup(batch: number, gatherMs: number, extra: { inFlight?: number; handle?: (b: ChunkBatch) => Promise<void> | void } = {}) {
  const dir = tempDir();
  const log = await DurableLog.open({ dir: join(dir, 'log'), agentId: 'pi', maxDelayMs: 2, maxRecords: 50, deadLetters: { maxCount: 5, maxBytes: 1 << 20, payloadCapBytes: 64 }, log: quiet });
  const handled: { at: number; first: number; count: number }[] = [];
  const handle = (b: ChunkBatch) => {
    handled.push({ at: Date.now(), first: b.firstSeq, count: b.count });
    return extra.handle?.(b);
  };
  const consumer = await startConsumer(log, 'store', handle, { batch, gatherMs, inFlight: extra.inFlight, logger: quiet });
  opened.push({ dir, log, consumer });
  const append = (n: number) => Promise.all(Array.from({ length: n }, (_, i) => log.append({ topic: 't', receivedAt: i, clockSynced: true, payloadJson: '{}', clientId: 'c', qos: 1 }).durable));
  return { log, handled, append };
}

const until = async (check: () => boolean, ms: number) => {
  const deadline = Date.now() + ms;
  while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  return check();
};

describe('log consumer batching', () => {
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
    const { handled, append } = await setup(50, 60_000);
    await append(120); // chunks of 50: two full batches and 20 left over
    expect(await until(() => handled.length === 2, 5000)).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    expect(handled.map((h) => [h.first, h.count])).toEqual([
      [1, 50],
      [51, 50],
    ]);
  });

  it('counts the wait from the commit: readings that waited gatherMs while a write ran go out at once', async () => {
    let calls = 0;
    const { handled, append } = await setup(50, 400, { handle: () => (calls++ === 0 ? new Promise((r) => setTimeout(r, 600)) : undefined) });
    await append(70); // a full batch of 50, and 20 that wait
    expect(await until(() => handled.length === 2, 5000)).toBe(true);
    expect(handled.map((h) => [h.first, h.count])).toEqual([
      [1, 50],
      [51, 20],
    ]);
    // The 20 were committed with the first 50: by the time that write ended they had waited 600 ms.
    expect(handled[1].at - handled[0].at).toBeLessThan(600 + 250);
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
