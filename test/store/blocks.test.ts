// The SQLite store's blocks against a plain list: whatever the writes (topics interleaved, times
// that step back as a clock does), removals and prunings, every query finds what the list finds,
// in the same order.
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeBlock, encodeBlock, inOrder, type BlockEntry } from '../../agent/consume/store/blocks.js';
import { SqliteDb } from '../../agent/consume/store/sqlite-db.js';
import type { StoreQuery } from '../../agent/consume/store/types.js';
import { encodeRecord, type LogRecord } from '../../agent/log/record.js';
import { cleanup, tempDir } from '../helpers/agent.js';
import { T0 } from '../helpers/records.js';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach(cleanup));

const TOPICS = ['a/1', 'a/2', 'b/1', 'b/2'];

function reading(seq: number, topic: string, receivedAt: number): LogRecord {
  return { seq, agentId: 'pi', topic, receivedAt, clockSynced: true, payload: { n: seq }, clientId: `c${seq % 3}`, qos: 1 };
}

/** What a query should find: the list filtered and sorted as the store promises. */
function expected(all: LogRecord[], q: StoreQuery): number[] {
  const desc = q.order === 'desc';
  const matchTopic = (t: string) => q.topic === undefined || (q.topic.endsWith('/#') ? t.startsWith(q.topic.slice(0, -1)) : t === q.topic);
  return all
    .filter(
      (r) =>
        matchTopic(r.topic) &&
        r.receivedAt >= (q.from ?? -Infinity) &&
        r.receivedAt <= (q.to ?? Infinity) &&
        r.seq > (q.afterSeq ?? -Infinity) &&
        !(q.exceptSeqs && r.seq > q.exceptSeqs.after && r.seq <= q.exceptSeqs.through) &&
        !(q.after && (desc ? 1 : -1) * inOrder({ at: r.receivedAt, seq: r.seq }, q.after) >= 0),
    )
    .sort((a, b) => (desc ? -1 : 1) * inOrder({ at: a.receivedAt, seq: a.seq }, { at: b.receivedAt, seq: b.seq }))
    .map((r) => r.seq);
}

const query = (db: SqliteDb, q: StoreQuery) =>
  [...db.query(q, q.topic?.endsWith('#') ? (t) => t.startsWith(q.topic!.slice(0, -1)) : undefined)].map((r) => r.seq);

const arbQuery = fc.record(
  {
    topic: fc.constantFrom(...TOPICS, 'a/#'),
    from: fc.integer({ min: 0, max: 400 }).map((s) => T0 + s * 1000),
    to: fc.integer({ min: 0, max: 400 }).map((s) => T0 + s * 1000),
    afterSeq: fc.integer({ min: 0, max: 300 }),
    exceptSeqs: fc.tuple(fc.nat(300), fc.nat(60)).map(([after, n]) => ({ after, through: after + n })),
    after: fc.record({ at: fc.integer({ min: 0, max: 400 }).map((s) => T0 + s * 1000), seq: fc.nat(300) }),
    order: fc.constantFrom<'asc' | 'desc'>('asc', 'desc'),
  },
  { requiredKeys: [] },
);

describe('the SQLite store in blocks', () => {
  it('encodes a block and decodes it as it was, in time order (a payload kept as its text)', () => {
    const entries: BlockEntry[] = [5, 3, 9].map((seq) => ({
      seq,
      at: T0 + (seq === 9 ? 1 : seq * 1000),
      deviceTime: seq === 3 ? T0 : null,
      clockSynced: seq !== 5,
      clockCorrectionMs: seq === 5 ? -40 : null,
      client: seq,
      schema: null,
      qos: 1,
      encoding: null,
      payload: `{"v": 1.50, "seq":${seq}}`,
    }));
    const block = encodeBlock(entries);
    expect(block).toMatchObject({ firstSeq: 3, lastSeq: 9, firstAt: T0 + 1, lastAt: T0 + 5000, count: 3 });
    expect(block.payloadBytes).toBe(entries.reduce((n, e) => n + Buffer.byteLength(e.payload), 0));
    expect(decodeBlock(block, 7)).toEqual([...entries].sort(inOrder).map((e) => ({ ...e, topic: 7 })));
  });

  it('stores a batch given again after a later one was stored (two writes in flight, the first failed), once', () => {
    const dir = tempDir();
    dirs.push(dir);
    const db = new SqliteDb(join(dir, 'store.db'));
    const lines = (from: number, to: number) =>
      Array.from({ length: to - from + 1 }, (_, i) => reading(from + i, TOPICS[i % 2], T0 + (from + i) * 1000)).map((r) =>
        encodeRecord(r.seq, { ...r, payloadJson: JSON.stringify(r.payload) }),
      );
    db.write('pi', lines(1, 10));
    db.write('pi', lines(21, 30)); // stored while 11-20 failed
    db.write('pi', lines(11, 20)); // given again
    db.write('pi', lines(11, 20)); // and again: skipped
    db.write('pi', lines(5, 25)); // a replay across all three
    expect(query(db, {})).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    db.close();
  });

  it('finds what a plain list finds, whatever the writes, clock steps, removals and prunings', () => {
    fc.assert(
      fc.property(
        // Per reading: its topic, and how its time moves from the one before (now and then back, as a stepped clock)
        fc.array(fc.tuple(fc.constantFrom(...TOPICS), fc.integer({ min: -30, max: 5 })), { minLength: 1, maxLength: 250 }),
        fc.array(fc.integer({ min: 1, max: 80 }), { minLength: 1, maxLength: 8 }),
        fc.array(
          fc.oneof(
            fc.record({
              op: fc.constant('prune' as const),
              before: fc.nat(400),
              throughSeq: fc.nat(300),
              limit: fc.integer({ min: 1, max: 200 }),
            }),
            fc.record({ op: fc.constant('remove' as const), topic: fc.constantFrom(...TOPICS), from: fc.nat(400), to: fc.nat(400) }),
          ),
          { maxLength: 3 },
        ),
        fc.array(arbQuery, { minLength: 1, maxLength: 6 }),
        (steps, writes, changes, queries) => {
          const dir = tempDir();
          dirs.push(dir);
          const db = new SqliteDb(join(dir, 'store.db'));
          try {
            let at = 200;
            const all = steps.map(([topic, step], i) => {
              at = Math.max(0, at + (step < -20 ? step * 5 : Math.max(step, 0)));
              return reading(i + 1, topic, T0 + at * 1000);
            });
            // Written in batches of the sizes given (the last takes the rest), one of them given twice (a replay after a crash).
            let next = 0;
            for (const size of [...writes, all.length]) {
              const part = all.slice(next, next + size);
              if (!part.length) break;
              const lines = part.map((r) => encodeRecord(r.seq, { ...r, payloadJson: JSON.stringify(r.payload) }));
              db.write('pi', lines);
              if (size === writes[0]) db.write('pi', lines);
              next += size;
            }
            let kept = all;
            for (const change of changes) {
              const ids = db.topicIds((t) => change.op === 'prune' || t === change.topic);
              if (change.op === 'prune') {
                const before = T0 + change.before * 1000;
                while (db.pruneStep(ids, before, change.throughSeq, change.limit).deleted > 0);
                kept = kept.filter((r) => !(r.receivedAt < before && r.seq <= change.throughSeq));
              } else {
                const [from, to] = [T0 + change.from * 1000, T0 + change.to * 1000];
                while (!db.removeStep(ids, from, to, 50).done);
                kept = kept.filter((r) => !(r.topic === change.topic && r.receivedAt >= from && r.receivedAt <= to));
              }
            }
            expect(query(db, {})).toEqual(expected(kept, {}));
            expect(db.lastSeq()).toBe(Math.max(0, ...kept.map((r) => r.seq)));
            for (const q of queries) expect(query(db, q)).toEqual(expected(kept, q));
            const bytes = (topic: string) =>
              kept.filter((r) => r.topic === topic).reduce((n, r) => n + JSON.stringify(r.payload).length, 0);
            for (const t of TOPICS) expect(db.topicBytes(db.topicIds((name) => name === t))).toBe(bytes(t));
            // The records come back whole: names, payload, client.
            const first = kept[0] as LogRecord | undefined;
            if (first)
              expect(
                query(db, { topic: first.topic, afterSeq: first.seq - 1, to: first.receivedAt, from: first.receivedAt }).includes(
                  first.seq,
                ),
              ).toBe(true);
            if (first) expect([...db.query({ afterSeq: first.seq - 1 })].find((r) => r.seq === first.seq)).toEqual(first);
          } finally {
            db.close();
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
