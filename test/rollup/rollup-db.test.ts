// Rollups: the statistics are right whatever the batching, and a batch read again after a crash
// counts once. Property tests (fast-check) against a direct computation over all readings.
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeRecord } from '../../agent/log/record.js';
import { RollupDb, type RollupRow } from '../../agent/consume/rollups/db.js';
import { Extractor } from '../../agent/consume/rollups/extract.js';
import { merge, single, stddev, type Stats } from '../../agent/consume/rollups/stats.js';
import { cleanup, tempDir } from '../helpers/agent.js';

const MIN = 60_000;
const T0 = Date.UTC(2026, 11, 2, 10, 0, 0);

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach(cleanup));
function openDb(widths = [MIN, 5 * MIN], rules: { topics: string[]; tags: string[] }[] = [], path?: string) {
  const dir = tempDir();
  dirs.push(dir);
  return new RollupDb(path ?? `${dir}/rollups.db`, widths, rules, 32);
}

const line = (seq: number, topic: string, receivedAt: number, payload: unknown) =>
  encodeRecord(seq, { topic, receivedAt, clockSynced: true, clientId: 'c', qos: 1, payloadJson: JSON.stringify(payload) });

/** Count, min, max, sum, mean, sample stddev, last computed directly (two passes). */
function direct(values: number[]) {
  const count = values.length;
  const sum = values.reduce((a, b) => a + b, 0);
  const mean = sum / count;
  const ss = values.reduce((a, v) => a + (v - mean) ** 2, 0);
  return {
    count,
    min: Math.min(...values),
    max: Math.max(...values),
    sum,
    mean,
    stddev: count < 2 ? null : Math.sqrt(ss / (count - 1)),
    last: values.at(-1)!,
  };
}

const close = (a: number | null, b: number | null, scale: number) =>
  a === null || b === null ? a === b : Math.abs(a - b) <= 1e-9 * Math.max(1, scale);

describe('rollup statistics', () => {
  it('merging in any grouping equals computing over all values at once', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 200 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (values, cuts) => {
          // Split into groups at the cut points, fold each group, merge the groups.
          const points = [...new Set(cuts.map((c) => c % values.length))].sort((a, b) => a - b).filter((c) => c > 0);
          const groups = [0, ...points].map((from, i, all) => values.slice(from, all[i + 1] ?? values.length));
          const folded = groups.map((g, gi) => g.map((v, k) => single(v, gi * 1000 + k)).reduce(merge)).reduce(merge);
          const want = direct(values);
          const scale = Math.max(...values.map(Math.abs));
          expect(folded.count).toBe(want.count);
          expect(folded.min).toBe(want.min);
          expect(folded.max).toBe(want.max);
          expect(close(folded.sum, want.sum, scale * values.length)).toBe(true);
          expect(close(folded.mean, want.mean, scale)).toBe(true);
          expect(close(stddev(folded), want.stddev, scale)).toBe(true);
          expect(folded.last).toBe(want.last);
        },
      ),
    );
  });

  it('keeps the mean finite for values near the largest double, however they are grouped (a NaN would be refused by the database)', () => {
    const huge = [50, 1e308, 1e308, 5, -1e308, 1e308];
    for (let cut = 1; cut < huge.length; cut++) {
      const part = (values: number[], from: number) =>
        values.reduce<Stats | undefined>((s, v, i) => (s ? merge(s, single(v, from + i)) : single(v, from + i)), undefined)!;
      const folded = merge(part(huge.slice(0, cut), 1), part(huge.slice(cut), cut + 1));
      expect(Number.isFinite(folded.mean), `cut at ${cut}: mean ${folded.mean}`).toBe(true);
      expect(Number.isNaN(folded.m2), `cut at ${cut}: m2`).toBe(false);
    }
    // the control: ordinary values give the ordinary mean
    expect(merge(single(1, 1), merge(single(2, 2), single(6, 3))).mean).toBeCloseTo(3, 12);
  });

  it('keeps the spread of large values close together (no sum-of-squares cancellation)', () => {
    const values = Array.from({ length: 1000 }, (_, i) => 1e9 + (i % 2)); // stddev ~0.5
    const s = values.map((v, i) => single(v, i)).reduce(merge);
    expect(stddev(s)).toBeCloseTo(direct(values).stddev!, 9);
    // Positive control: the naive sum of squares loses it entirely at this magnitude.
    const naive = Math.sqrt((values.reduce((a, v) => a + v * v, 0) - values.length * (s.sum / values.length) ** 2) / (values.length - 1));
    expect(Math.abs(naive - 0.5)).toBeGreaterThan(0.1);
  });
});

describe('rollup database', () => {
  /** Readings on two topics and fields, received over 12 minutes. */
  const readings = fc.array(
    fc.record({
      topic: fc.constantFrom('s/a', 's/b'),
      offset: fc.integer({ min: 0, max: 12 * MIN - 1 }),
      t: fc.double({ min: -50, max: 50, noNaN: true }),
      h: fc.integer({ min: 0, max: 100 }),
    }),
    { minLength: 1, maxLength: 150 },
  );

  /** What the rollups must say: direct computation grouped by topic, field and bucket. */
  function expected(rs: { topic: string; offset: number; t: number; h: number }[], width: number) {
    const groups = new Map<string, number[]>();
    rs.forEach((r) => {
      for (const [field, v] of [
        ['t', r.t],
        ['h', r.h],
      ] as const) {
        const key = `${r.topic}|${field}|${Math.floor((T0 + r.offset) / width) * width}`;
        groups.set(key, [...(groups.get(key) ?? []), v]);
      }
    });
    return groups;
  }

  it('equals a direct computation, whatever the batches and however often a batch is applied again (crash replay)', () => {
    fc.assert(
      fc.property(
        readings,
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 20 }),
        fc.array(fc.boolean(), { maxLength: 20 }),
        (rs, sizes, replays) => {
          const db = openDb();
          try {
            const lines = rs.map((r, i) => line(i + 1, r.topic, T0 + r.offset, { t: r.t, h: r.h, label: 'x' }));
            // Consecutive batches of the given sizes; some applied twice, and some re-sent from an
            // earlier point (a consumer whose cursor had not moved when it crashed).
            for (let at = 0, k = 0; at < lines.length; k++) {
              const size = sizes[k % sizes.length];
              const part = lines.slice(at, at + size);
              db.write(part);
              if (replays[k % Math.max(1, replays.length)]) db.write(lines.slice(Math.max(0, at - size), at + size));
              at += size;
            }
            expect(db.appliedSeq()).toBe(lines.length);
            for (const width of [MIN, 5 * MIN]) {
              const rows = [...db.query({ width })];
              const want = expected(rs, width);
              expect(rows.length).toBe(want.size);
              for (const row of rows) {
                const values = want.get(`${row.topic}|${row.field}|${row.start}`)!;
                const d = direct(values);
                // (+ 0: SQLite keeps -0 as 0)
                expect([row.count, row.min, row.max, row.last]).toEqual([d.count, d.min + 0, d.max + 0, d.last + 0]);
                expect(close(row.mean, d.mean, 50)).toBe(true);
                expect(close(row.stddev, d.stddev, 50)).toBe(true);
              }
            }
          } finally {
            db.close();
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it('a database of the earlier order (series first) is converted once at open and keeps its buckets', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const path = `${dir}/rollups.db`;
    const first = new RollupDb(path, [MIN], [], 32);
    first.write([line(1, 's/a', T0, { t: 20 }), line(2, 's/a', T0 + MIN, { t: 22 })]);
    first.close();
    // Back to the earlier layout, as a database of that release holds it.
    const { default: Database } = await import('better-sqlite3-multiple-ciphers');
    const raw = new Database(path);
    const sql = (raw.prepare("SELECT sql FROM sqlite_master WHERE name = 'rollup'").get() as { sql: string }).sql;
    raw.exec(`CREATE TABLE old_rollup AS SELECT * FROM rollup; DROP VIEW rollups; DROP TABLE rollup;
      ${sql.replace('PRIMARY KEY (width, start, series_id, field_id)', 'PRIMARY KEY (width, series_id, field_id, start)')};
      INSERT INTO rollup SELECT * FROM old_rollup; DROP TABLE old_rollup;`);
    raw.close();
    const again = new RollupDb(path, [MIN], [], 32);
    try {
      expect([...again.query({ width: MIN })].map((r) => [r.start, r.count, r.mean])).toEqual([
        [T0, 1, 20],
        [T0 + MIN, 1, 22],
      ]);
      const now = (
        new Database(path, { readonly: true }).prepare("SELECT sql FROM sqlite_master WHERE name = 'rollup'").get() as { sql: string }
      ).sql;
      expect(now).toContain('PRIMARY KEY (width, start, series_id, field_id)');
      again.write([line(3, 's/a', T0 + MIN, { t: 24 })]);
      expect([...again.query({ width: MIN })].at(-1)).toMatchObject({ start: T0 + MIN, count: 2, mean: 23 });
    } finally {
      again.close();
    }
  });

  it('keeps what it applied across a reopen, and skips it when the log hands it again', () => {
    const dir = tempDir();
    dirs.push(dir);
    const path = `${dir}/r.db`;
    const lines = Array.from({ length: 100 }, (_, i) => line(i + 1, 's/a', T0 + i * 1000, { t: i }));
    let db = new RollupDb(path, [MIN], [], 32);
    db.write(lines.slice(0, 60));
    db.close();
    db = new RollupDb(path, [MIN], [], 32);
    expect(db.appliedSeq()).toBe(60);
    db.write(lines.slice(30)); // the consumer's cursor was at 30 when it stopped
    const total = [...db.query({ width: MIN })].reduce((n, r) => n + r.count, 0);
    expect(total).toBe(100);
    db.close();
  });

  it('splits series by tag values, rolls up nested numbers as a.b, ignores text, booleans, arrays and raw payloads', () => {
    const db = openDb([MIN], [{ topics: ['env/#'], tags: ['room'] }]);
    try {
      db.write([
        line(1, 'env/x', T0, { room: 'kitchen', t: 20, ok: true, note: 'hi', list: [1, 2], power: { v: 230, a: 1.5 } }),
        line(2, 'env/x', T0 + 1000, { room: 'hall', t: 18 }),
        line(3, 'env/x', T0 + 2000, { room: 'kitchen', t: 22 }),
        encodeRecord(4, {
          topic: 'env/x',
          receivedAt: T0,
          clockSynced: true,
          clientId: 'c',
          qos: 1,
          encoding: 'base64',
          payloadJson: Buffer.from('raw').toString('base64'),
        }),
        line(5, 'other/y', T0, { room: 'attic', t: 5 }),
      ]);
      const rows = [...db.query({ width: MIN })].map((r: RollupRow) => [r.topic, JSON.stringify(r.tags), r.field, r.count, r.mean]);
      expect(rows).toEqual([
        ['env/x', '{"room":"hall"}', 't', 1, 18],
        ['env/x', '{"room":"kitchen"}', 'power.a', 1, 1.5],
        ['env/x', '{"room":"kitchen"}', 'power.v', 1, 230],
        ['env/x', '{"room":"kitchen"}', 't', 2, 21],
        ['other/y', '{}', 't', 1, 5], // no tag rule for it: room is not a tag, and text is not rolled up
      ]);
      expect(db.appliedSeq()).toBe(5);
    } finally {
      db.close();
    }
  });

  it('rolls up at most maxFields numbers of a reading and counts the rest', () => {
    const x = new Extractor([], 3);
    const s = x.sample('t', { a: 1, b: 2, c: 3, d: 4, e: { f: 5 } })!;
    expect(s.fields.map(([n]) => n)).toEqual(['a', 'b', 'c']);
    expect(s.ignored).toBe(2);
    expect(x.sample('t', [1, 2])).toBeNull();
    expect(x.sample('t', 5)).toBeNull();
  });

  it('prunes buckets that ended before the cut, per width and topic, and gives the space back', () => {
    const db = openDb([MIN, 5 * MIN]);
    try {
      const lines = Array.from({ length: 600 }, (_, i) => line(i + 1, i % 2 ? 's/a' : 's/b', T0 + i * 1000, { t: i }));
      db.write(lines); // 10 minutes: ten 1m buckets and two 5m buckets per topic
      const ids = db.topicIds((t) => t === 's/a');
      let step = db.pruneStep({ topicIds: ids, widths: [MIN], before: T0 + 4 * MIN }, 1000);
      expect(step.deleted).toBe(4); // s/a's first four 1m buckets
      while (!step.done) step = db.pruneStep({ topicIds: ids, widths: [MIN], before: T0 + 4 * MIN }, 1000);
      const left = [...db.query({ width: MIN })];
      expect(left.filter((r) => r.topic === 's/a').map((r) => (r.start - T0) / MIN)).toEqual([4, 5, 6, 7, 8, 9]);
      expect(left.filter((r) => r.topic === 's/b')).toHaveLength(10);
      expect([...db.query({ width: 5 * MIN })]).toHaveLength(4);
    } finally {
      db.close();
    }
  });
});

// Keep Stats in the type check of this file: merge takes and returns it.
export type { Stats };
