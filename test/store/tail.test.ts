// Queries see the log's tail: readings the store has gathered but not yet written are merged into
// every answer (query, page, fold) from the log, so that a client asking often does not make the
// store write small transactions. A tail too long to merge falls back to having the store write.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MOST_TAIL, StoreTail } from '../../agent/consume/store/tail.js';
import { STORE_CONSUMER } from '../../agent/consume/store/index.js';
import type { LogRecord } from '../../agent/log/index.js';
import type { FoldResult } from '../../agent/consume/store/types.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { cleanup, CLI, startAgent, type InProcessAgent } from '../helpers/agent.js';
import { adminClient } from '../helpers/web.js';

const T0 = Date.UTC(2026, 11, 1, 12);

describe('store queries with the log tail', () => {
  let agent: InProcessAgent;
  beforeAll(async () => {
    // The store writes only when told to (a flush) or at 10,000 readings: everything else is the tail.
    agent = await startAgent({ store: { gatherMs: 60_000, maxGatherMs: 3_600_000 }, rollups: { enabled: false } });
  });
  afterAll(async () => {
    await agent.stop();
    cleanup(agent.dir);
  });

  const append = async (n: number, at: (i: number) => number) => {
    let last: Promise<void> = Promise.resolve();
    for (let i = 0; i < n; i++) {
      last = agent.runtime.log.append({
        topic: `tail/${i % 3}`,
        receivedAt: at(i),
        clockSynced: true,
        clientId: 'c',
        qos: 1,
        payloadJson: JSON.stringify({ i, odd: i % 2 === 1 }),
      }).durable;
    }
    await last;
  };
  const reads = () => agent.runtime.store!.reads;
  // Buckets merged in another order: mean and m2 (Welford) equal to rounding.
  const buckets = (f: FoldResult) =>
    [...f.series.values()]
      .flatMap((s) =>
        [...s.points].map(([start, p]) => [s.topic, start, p.count, p.min, p.max, p.sum, p.last, p.mean.toFixed(9), p.m2.toFixed(3)]),
      )
      .sort();
  const stored = () => agent.runtime.store!.target.lastSeq();
  const keys = (rs: LogRecord[]) => rs.map((r) => (r.payload as { i: number }).i);

  it('answers from the store and the tail at once, the same as the store alone once it has written them, and writes nothing for it', async () => {
    await append(300, (i) => T0 + i * 1000);
    await agent.runtime.store!.caughtUp(300, 10_000); // the first 300 in the store
    expect(stored()).toBe(300);
    // 300 more, received in between the first ones' times too (a clock corrected later, say): only in the log.
    await append(300, (i) => T0 + i * 1000 + 500);
    const asked = [
      { topic: 'tail/#', limit: 1000 },
      { topic: 'tail/#', order: 'desc' as const, limit: 50 },
      { topic: 'tail/1', from: T0 + 100_000, to: T0 + 200_000, limit: 1000 },
      { topic: 'tail/#', where: [{ path: 'odd', op: '=' as const, value: true }], limit: 1000 },
      { topic: 'tail/#', after: { at: T0 + 150_000, seq: 151 }, limit: 20 },
      { topic: 'tail/#', order: 'desc' as const, after: { at: T0 + 150_000, seq: 151 }, limit: 20 },
    ];
    const merged = await Promise.all(asked.map((q) => reads().query(q)));
    const folded = await reads().fold({ topic: 'tail/#', width: 60_000, fields: ['i'], maxScan: 100_000 });
    const paged: LogRecord[] = [];
    for (let after: { at: number; seq: number } | undefined; ;) {
      const { records } = await reads().page({ topic: 'tail/#', after, limit: 70 });
      paged.push(...records);
      if (records.length < 70) break;
      after = { at: records.at(-1)!.receivedAt, seq: records.at(-1)!.seq };
    }
    expect(stored()).toBe(300); // the queries made the store write nothing

    expect(merged[0]).toHaveLength(600);
    expect(paged.map((r) => r.seq)).toEqual(merged[0].map((r) => r.seq)); // each once, in order
    expect(merged[0].map((r) => r.receivedAt)).toEqual([...merged[0].map((r) => r.receivedAt)].sort((a, b) => a - b));
    expect(merged[1][0].seq).toBe(600); // the newest, from the tail
    // The control: once the store has written them, the store alone gives the same answers.
    await agent.runtime.store!.caughtUp(600, 10_000);
    expect(stored()).toBe(600);
    const fromStore = await Promise.all(asked.map((q) => agent.runtime.store!.target.query(q)));
    expect(merged.map(keys)).toEqual(fromStore.map(keys));
    expect(merged[0]).toEqual(fromStore[0]); // whole records: a reading from the tail looks as one from the store
    const storeFold = await agent.runtime.store!.target.fold({ topic: 'tail/#', width: 60_000, fields: ['i'], maxScan: 100_000 });
    expect(folded.folded).toBe(600);
    expect(buckets(folded)).toEqual(buckets(storeFold));
    expect(buckets(folded).length).toBeGreaterThan(10);
  });

  it('through the API: readings published a moment ago are there, and asking again and again writes nothing', async () => {
    const before = stored();
    await append(40, (i) => Date.now() + i);
    const api = adminClient(agent);
    for (let i = 0; i < 5; i++) {
      const body = (await api.get('/api/data?topic=tail%2F%23&limit=40&order=desc')).body as { readings: { seq: number }[] };
      expect(body.readings.map((r) => r.seq)[0]).toBe(before + 40);
      expect(body.readings).toHaveLength(40);
    }
    expect(stored()).toBe(before);
  });

  it('`edge-agent sync flush` has the store write what it gathered (queries do not)', async () => {
    const base = agent.runtime.log.lastSeq;
    await append(25, (i) => Date.now() + i);
    expect(await reads().query({ topic: 'tail/#', order: 'desc', limit: 1 })).toHaveLength(1);
    expect(stored()).toBeLessThan(base + 25); // the control: the query wrote nothing
    const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'sync', 'flush', '--config', agent.configPath]);
    expect(stdout).toContain(`store written through seq ${base + 25}`);
    expect(stored()).toBe(base + 25);
  });

  it('an aggregate asked again is folded on from where the last one ended: answers as the store alone gives once it has written them', async () => {
    const q = { topic: 'tail/#', width: 60_000, fields: ['i'], maxScan: 100_000 };
    const base = agent.runtime.log.lastSeq;
    await append(200, (i) => T0 + 700_000 + i * 1000);
    const first = await reads().fold(q);
    // The answer is the caller's: changing it changes nothing kept for the next one.
    for (const s of first.series.values()) for (const p of s.points.values()) p.count = -1;
    await append(500, (i) => T0 + 900_000 + i * 1000); // more than a slice (200): the two folds take turns
    const [again, twin] = await Promise.all([reads().fold(q), reads().fold(q)]); // at once: each reading folded once
    expect(stored()).toBeLessThanOrEqual(base); // the folds came from the tail
    // The control: the store alone, once it has written them.
    await agent.runtime.store!.caughtUp(base + 700, 10_000);
    const storeFold = await agent.runtime.store!.target.fold(q);
    expect(again.folded).toBe(storeFold.folded);
    expect(twin.folded).toBe(storeFold.folded);
    expect(buckets(again)).toEqual(buckets(storeFold));
    expect(buckets(twin)).toEqual(buckets(storeFold));
  });

  it('hands every query the same readings until more come, and never changes what it handed out', async () => {
    const tail = new StoreTail({ log: agent.runtime.log, consumer: STORE_CONSUMER, holding: () => false, offsets: () => ({}) });
    await append(30, (i) => T0 + 1_000_000 + i);
    const through = tail.through();
    const [a, b] = await Promise.all([tail.after(through), tail.after(through)]);
    expect(a!.records.length).toBeGreaterThanOrEqual(30);
    expect(b!.records).toBe(a!.records); // one array, not a copy each
    const seqs = a!.records.map((r) => r.seq);
    await append(10, (i) => T0 + 1_100_000 + i);
    const c = await tail.after(through);
    expect(c!.records).toHaveLength(seqs.length + 10); // the control: the new readings are there
    expect(a!.records.map((r) => r.seq)).toEqual(seqs); // and not in what the first two got
  });

  it(`a tail longer than ${MOST_TAIL.toLocaleString('en-US')} readings: the query waits for the store to write instead (it is catching up anyway)`, async () => {
    const before = stored();
    const base = agent.runtime.log.lastSeq;
    await append(MOST_TAIL + 10, (i) => Date.now() + i);
    const newest = await reads().query({ topic: 'tail/#', order: 'desc', limit: 1 });
    // It waited (up to a second) for the store, which wrote (the control for "writes nothing" above).
    expect(stored()).toBeGreaterThan(before);
    expect(newest[0].seq).toBeGreaterThan(base);
    expect(newest[0].seq).toBeLessThanOrEqual(stored());
  }, 60_000);
});
