import { appendFileSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import type { LogRecord } from '../../agent/log/record.js';
import { FilesStore } from '../../agent/consume/store/files.js';
import { defineSqlarUncompress } from '../../agent/consume/store/sqlite-db.js';
import { foldReading, mergeFolded } from '../../agent/consume/store/fold.js';
import { openStore, type LocalStore, type StoreBackend } from '../../agent/consume/store/index.js';
import type { Folded, StoreQuery } from '../../agent/consume/store/types.js';
import { cleanup, tempDir } from '../helpers/agent.js';
import { batch, record, T0 } from '../helpers/records.js';

const HOUR = 3_600_000;

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach(cleanup));

describe.each(['sqlite', 'files'] as StoreBackend[])('%s store', (backend) => {
  const path = () => {
    const d = tempDir();
    dirs.push(d);
    return backend === 'sqlite' ? join(d, 'store.db') : join(d, 'store');
  };

  it('stores readings and queries them by topic (exact or pattern), time and seq', async () => {
    const store = await openStore(backend, path());
    await store.write(batch([record(1), record(2, 'sensors/b/env'), record(3), record(4, 'other/x')]));
    expect((await store.query({ topic: 'sensors/a/env' })).map((r) => r.seq)).toEqual([1, 3]);
    expect((await store.query({ topic: 'sensors/+/env' })).map((r) => r.seq)).toEqual([1, 2, 3]);
    expect((await store.query({ from: T0 + 2000, to: T0 + 3000 })).map((r) => r.seq)).toEqual([2, 3]);
    expect((await store.query({ afterSeq: 2, limit: 1 })).map((r) => r.seq)).toEqual([3]);
    expect((await store.query({ topic: 'sensors/a/env' }))[0]).toEqual(record(1));
    await store.close();
  });

  it('folds a range into buckets beside the store (an aggregate), up to maxScan readings', async () => {
    const store = await openStore(backend, path());
    // 3,000 readings a second apart on two topics: t = 20 + seq / 10, seq.
    await store.write(batch(Array.from({ length: 3000 }, (_, i) => record(i + 1, i % 2 ? 'sensors/b/env' : 'sensors/a/env'))));
    const all = await store.fold({ topic: 'sensors/#', width: 60_000, fields: ['t'], maxScan: 10_000 });
    expect(all).toMatchObject({ folded: 3000, more: false });
    const a = all.series.get('sensors/a/env\u0000t')!;
    const points = [...a.points.values()];
    expect(points.reduce((n, p) => n + p.count, 0)).toBe(1500);
    expect(Math.min(...points.map((p) => p.min))).toBeCloseTo(20.1, 9);
    expect(Math.max(...points.map((p) => p.max))).toBeCloseTo(20 + 2999 / 10, 9);
    expect(points.reduce((n, p) => n + p.sum, 0)).toBeCloseTo(
      Array.from({ length: 1500 }, (_, i) => 20 + (2 * i + 1) / 10).reduce((x, y) => x + y),
      6,
    );
    // Past the budget: as many as it allows, and `more`; just at it (the control): all, and not more.
    expect(await store.fold({ topic: 'sensors/#', width: 60_000, fields: ['t'], maxScan: 1000 })).toMatchObject({
      folded: 1000,
      more: true,
    });
    expect(await store.fold({ topic: 'sensors/a/env', width: 60_000, fields: ['t'], maxScan: 1500 })).toMatchObject({
      folded: 1500,
      more: false,
    });
    await store.close();
  });

  it('counts the bytes it wrote to storage (SD-card wear)', async () => {
    const store = await openStore(backend, path());
    const before = store.writtenBytes()!;
    await store.write(batch(Array.from({ length: 200 }, (_, i) => ({ ...record(i + 1), payload: { pad: 'p'.repeat(500) } }))));
    expect(store.writtenBytes()! - before).toBeGreaterThan(200 * 500); // each payload reached the disk at least once
    await store.close();
  });

  it('is idempotent on seq, also across a reopen', async () => {
    const p = path();
    let store: LocalStore = await openStore(backend, p);
    await store.write(batch([record(1), record(2)]));
    await store.write(batch([record(1), record(2), record(3)]));
    expect(store.lastSeq()).toBe(3);
    await store.close();
    store = await openStore(backend, p);
    expect(store.lastSeq()).toBe(3);
    await store.write(batch([record(2), record(3), record(4)]));
    expect((await store.query({})).map((r) => r.seq)).toEqual([1, 2, 3, 4]);
    await store.close();
  });

  it('takes readings from firstSeq on, across chunks, sealed or not', async () => {
    const key = randomBytes(32);
    const store = await openStore(backend, path());
    // The first chunk starts before the batch: readings 1-2 are not part of it.
    await store.write(
      batch(
        [1, 2, 3, 4, 5].map((n) => record(n)),
        { perChunk: 3, firstSeq: 3 },
      ),
    );
    await store.write(
      batch(
        [6, 7, 8].map((n) => record(n)),
        { perChunk: 2, key },
      ),
    );
    expect((await store.query({})).map((r) => r.seq)).toEqual([3, 4, 5, 6, 7, 8]);
    expect((await store.query({ afterSeq: 6 }))[0]).toEqual(record(7));
    await store.close();
  });

  it('leaves the chunks it is handed intact (the log keeps the newest in memory for other consumers)', async () => {
    const store = await openStore(backend, path());
    const records = Array.from({ length: 100 }, (_, i) => ({ ...record(i + 1), payload: { pad: randomBytes(64).toString('hex') } }));
    const handed = batch(records);
    expect(handed.chunks[0].byteLength).toBeGreaterThan(8192); // a buffer of its own, not a slice of Node's pool
    const before = handed.chunks.map((c) => Buffer.from(c));
    await store.write(handed);
    expect(handed.chunks.map((c) => Buffer.from(c))).toEqual(before);
    expect((await store.query({ limit: 1000 })).map((r) => r.payload)).toEqual(records.map((r) => r.payload));
    await store.close();
  });

  it('keeps raw (base64) payloads as they came', async () => {
    const store = await openStore(backend, path());
    const raw: LogRecord = {
      ...record(1, 'raw/x'),
      payload: Buffer.from([0, 1, 2, 255]).toString('base64'),
      encoding: 'base64',
      schema: undefined,
    };
    delete raw.schema;
    await store.write(batch([raw]));
    expect(await store.query({ topic: 'raw/x' })).toEqual([raw]);
    await store.close();
  });
});

describe('sqlite specifics', () => {
  it('makes the payload queryable as JSON through the readings view, with a rollback journal (not WAL: half the bytes written), a block per topic and write', async () => {
    const d = tempDir();
    dirs.push(d);
    const store = await openStore('sqlite', join(d, 'store.db'));
    await store.write(batch([record(1), record(2), record(3)]));
    await store.close();
    const { default: Database } = await import('better-sqlite3-multiple-ciphers');
    const db = new Database(join(d, 'store.db'), { readonly: true });
    defineSqlarUncompress(db);
    expect(db.prepare("SELECT seq FROM readings WHERE json_extract(payload, '$.t') > 20.15 ORDER BY seq").all()).toEqual([
      { seq: 2 },
      { seq: 3 },
    ]);
    expect(db.pragma('journal_mode', { simple: true })).toBe('delete'); // a rollback journal (a new connection's default flavour); WAL would persist as 'wal'
    expect(db.prepare('SELECT count(*) AS blocks, sum(count) AS readings FROM block').get()).toEqual({ blocks: 1, readings: 3 });
    expect(db.prepare('SELECT topic, agent_id, client_id, schema FROM readings WHERE seq = 1').get()).toEqual({
      topic: 'sensors/a/env',
      agent_id: 'pi',
      client_id: 'c',
      schema: 'env@1',
    });
    db.close();
  });
});

describe('files specifics', () => {
  it('writes one JSON Lines file per topic and hour, gzipped once the hour has closed', async () => {
    const d = tempDir();
    dirs.push(d);
    let now = T0 + 30 * 60_000;
    const store = new FilesStore({ dir: d, now: () => now });
    await store.write(batch([record(1, 's/a', T0 + 1), record(2, 's/a', T0 + HOUR + 1), record(3, 's/b', T0 + 2)]));
    expect(readdirSync(join(d, 's%2Fa')).sort()).toEqual(['2026-11-30T10.jsonl', '2026-11-30T11.jsonl']);
    now = T0 + HOUR + 10 * 60_000; // 10:xx closed (past the grace), 11:xx still open
    store.closeHours();
    expect(readdirSync(join(d, 's%2Fa')).sort()).toEqual(['2026-11-30T10.jsonl.gz', '2026-11-30T11.jsonl']);
    const lines = gunzipSync(readFileSync(join(d, 's%2Fa', '2026-11-30T10.jsonl.gz')))
      .toString()
      .trim()
      .split('\n');
    expect(lines.map((l) => JSON.parse(l).seq)).toEqual([1]);
    // In time order: 3 came before 2.
    expect((await store.query({ topic: 's/#' })).map((r) => r.seq)).toEqual([1, 3, 2]);
    await store.close();
  });

  it('recovers the highest seq from the files after a crash, cutting a torn last line', async () => {
    const d = tempDir();
    dirs.push(d);
    const now = () => T0;
    const store = new FilesStore({ dir: d, now });
    await store.write(batch([record(1, 's/a', T0), record(2, 's/a', T0)]));
    const file = join(d, 's%2Fa', '2026-11-30T10.jsonl');
    appendFileSync(file, `${JSON.stringify(record(3, 's/a', T0))}\n{"seq":4,"top`); // written, state not updated, then torn
    const again = new FilesStore({ dir: d, now });
    expect(again.lastSeq()).toBe(3);
    await again.write(batch([record(3, 's/a', T0), record(4, 's/a', T0)]));
    expect((await again.query({})).map((r) => r.seq)).toEqual([1, 2, 3, 4]);
    await Promise.all([store.close(), again.close()]);
  });
});

describe('sqlite store: writes before reads', () => {
  it('a query that scans the whole store runs in slices: a write sent while it runs is stored before it ends, the query still finds every match, one whose asker has gone stops, and askers take turns', async () => {
    const d = tempDir();
    dirs.push(d);
    const store = await openStore('sqlite', join(d, 'store.db'));
    const N = 150_000;
    for (let s = 1; s <= N; s += 10_000)
      await store.write(
        batch(
          Array.from({ length: Math.min(10_000, N - s + 1) }, (_, i) => record(s + i)),
          { perChunk: 2000 },
        ),
      );
    // Matches only the last reading of the store: the scan looks at every one of them.
    const scan = store.query({ topic: 'sensors/a/env', where: [{ path: 'seq', op: '=', value: N }] });
    const order: string[] = [];
    const scanned = scan.then((r) => {
      order.push('query');
      return r;
    });
    await new Promise((r) => setTimeout(r, 20)); // the scan is under way in the worker
    await store.write(batch([record(N + 1)])).then(() => order.push('write'));
    const found = await scanned;
    expect(found.map((r) => r.seq)).toEqual([N]); // the control: the sliced query is whole
    expect(order).toEqual(['write', 'query']);
    expect((await store.query({ afterSeq: N, limit: 5 })).map((r) => r.seq)).toEqual([N + 1]);
    // Its asker gone, a scan stops at the next slice (the API aborts the signal when the client goes).
    const gone = new AbortController();
    const abandoned = store.query({ topic: 'sensors/a/env', where: [{ path: 'seq', op: '=', value: -1 }] }, { signal: gone.signal });
    await new Promise((r) => setTimeout(r, 20));
    gone.abort(new Error('the client has gone'));
    await expect(abandoned).rejects.toThrow('the client has gone');
    expect((await store.query({ afterSeq: N - 1, limit: 5 })).map((r) => r.seq)).toEqual([N, N + 1]); // the store serves the next

    // Askers take turns: one asker's queue of scans does not hold up another's one-row query. The
    // control: the same one-row query from the scanning asker waits for its own scans.
    const ended: string[] = [];
    const ask = (asker: string, what: string, q: StoreQuery) => store.query(q, { name: asker }).then(() => ended.push(what));
    const everything = { topic: 'sensors/a/env', where: [{ path: 'seq', op: '=' as const, value: -1 }] };
    await Promise.all([
      ask('mallory', 'scan 1', everything),
      ask('mallory', 'scan 2', everything),
      ask('mallory', "mallory's row", { afterSeq: N, limit: 1 }),
      ask('watcher', "watcher's row", { afterSeq: N, limit: 1 }),
    ]);
    expect(ended.indexOf("watcher's row")).toBeLessThan(ended.indexOf('scan 2'));
    expect(ended.slice(0, 2)).toContain("watcher's row");
    expect(ended.slice(2)).toEqual(['scan 2', "mallory's row"]);
    await store.close();
  }, 120_000);
});

describe('folding in parts', () => {
  it('gives what folding all at once gives, whatever the split (the SQLite store folds slice by slice)', () => {
    const readings = Array.from({ length: 500 }, (_, i) => record(i + 1, i % 3 ? 'x/a' : 'x/b'));
    const whole: Folded = new Map();
    for (const r of readings) foldReading(whole, r, 60_000, ['t']);
    for (const cut of [1, 137, 250, 499]) {
      const [first, second]: Folded[] = [new Map(), new Map()];
      readings.slice(0, cut).forEach((r) => foldReading(first, r, 60_000, ['t']));
      readings.slice(cut).forEach((r) => foldReading(second, r, 60_000, ['t']));
      mergeFolded(first, second);
      for (const [key, s] of whole) {
        for (const [start, stats] of s.points) {
          const got = first.get(key)!.points.get(start)!;
          expect([got.count, got.min, got.max, got.last]).toEqual([stats.count, stats.min, stats.max, stats.last]);
          expect(got.sum).toBeCloseTo(stats.sum, 9);
          expect(got.m2).toBeCloseTo(stats.m2, 6);
        }
      }
    }
  });
});
