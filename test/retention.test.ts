// Retention by age, per topic pattern (the first matching rule decides), for the local store, the
// rollups and the dead letters, and by size for the store, with an injected clock; SQLite gives the
// space back in small steps.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3-multiple-ciphers';
import { afterEach, describe, expect, it } from 'vitest';
import { DurableLog } from '../agent/log/durable-log.js';
import { Retention, type RetentionConfig } from '../agent/retention/index.js';
import { DiskPressure, levelAfter, RESERVE_NEEDED, watermarks, type PressureLevel } from '../agent/retention/pressure.js';
import { openRollups } from '../agent/consume/rollups/index.js';
import { openStore, type StoreBackend } from '../agent/consume/store/index.js';
import { cleanup, tempDir } from './helpers/agent.js';
import { batch, record } from './helpers/records.js';
import { quiet } from './helpers/logger.js';
import { openStoreFile } from './helpers/store-file.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const NOW = Date.UTC(2026, 11, 1, 12, 0, 0);

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach(cleanup));
const newDir = () => {
  const d = tempDir();
  dirs.push(d);
  return d;
};

const DISK = { intervalSec: 5, warn: '20%', act: '10%', critical: '5%', reserve: '2%' };
const config = (store: RetentionConfig['store'], deadLetters = '30d', more: Partial<RetentionConfig> = {}): RetentionConfig => ({
  schedule: '0 0 1 1 *',
  store,
  storeMaxBytes: 0,
  rollups: [],
  deadLetters: { maxAge: deadLetters, rules: [] },
  stepReadings: 100,
  disk: DISK,
  ...more,
});

/** Readings on three topics, one every hour over the last `days` days (seq in time order). */
function history(days: number) {
  const out = [];
  let seq = 1;
  for (let t = NOW - days * DAY; t < NOW; t += HOUR)
    for (const topic of ['sensors/a/temp', 'sensors/b/temp', 'debug/x']) out.push(record(seq++, topic, t));
  return out;
}

const noDeadLetters = { pruneDeadLetters: async () => 0 };

describe.each(['sqlite', 'files'] as StoreBackend[])('retention on the %s store', (backend) => {
  it('deletes by age per topic pattern, the first matching rule deciding; counts what went', async () => {
    const dir = newDir();
    const store = await openStore(backend, backend === 'sqlite' ? join(dir, 'store.db') : join(dir, 'store'));
    const all = history(10);
    await store.write(batch(all));
    // debug/# keeps 1 day; sensors/a/# is kept 30 days by an earlier rule, though # says 3 days.
    const retention = new Retention({
      config: config([
        { topics: ['debug/#'], maxAge: '1d' },
        { topics: ['sensors/a/#'], maxAge: '30d' },
        { topics: ['#'], maxAge: '3d' },
      ]),
      store,
      log: noDeadLetters,
      logger: quiet,
      now: () => NOW,
    });
    const run = await retention.runOnce();
    retention.stop();
    const left = await store.query({ limit: 100_000 });
    const oldest = (topic: string) => Math.min(...left.filter((r) => r.topic === topic).map((r) => r.receivedAt));
    expect(oldest('debug/x')).toBeGreaterThanOrEqual(NOW - DAY - HOUR); // files: whole hours go
    expect(oldest('debug/x')).toBeLessThan(NOW - DAY + HOUR);
    expect(oldest('sensors/b/temp')).toBeGreaterThanOrEqual(NOW - 3 * DAY - HOUR);
    expect(oldest('sensors/b/temp')).toBeLessThan(NOW - 3 * DAY + HOUR);
    expect(oldest('sensors/a/temp')).toBe(NOW - 10 * DAY); // positive control: kept whole
    expect(run.storeDeleted).toBe(all.length - left.length);
    expect(run.storeDeleted).toBeGreaterThan(0);
    expect(run.steps).toBeGreaterThan(1); // in steps, not one long hold
    await store.close();
  });

  it("keeps a rule's topics below its maxBytes, their oldest readings first; other topics untouched", async () => {
    const dir = newDir();
    const path = backend === 'sqlite' ? join(dir, 'store.db') : join(dir, 'store');
    const store = await openStore(backend, path);
    // Payloads that do not compress: the SQLite store deflates its blocks.
    const all = history(10).map((r) => ({ ...r, payload: { pad: randomBytes(150).toString('hex'), seq: r.seq } }));
    await store.write(batch(all));
    const debug = { topics: ['debug/#'] };
    const before = await store.size(debug);
    expect(before).toBeGreaterThan(240 * 300); // 240 readings of 300+ bytes
    const max = Math.round(before / 4);
    const rules = [
      { topics: ['sensors/a/#'], maxAge: '30d' },
      { topics: ['#'], maxBytes: max },
    ];
    const retention = new Retention({ config: config(rules), store, log: noDeadLetters, logger: quiet, now: () => NOW });
    const run = await retention.runOnce();
    retention.stop();
    const left = await store.query({ limit: 100_000 });
    const seqs = (topic: string) => left.filter((r) => r.topic === topic).map((r) => r.seq);
    // '#' less sensors/a/# (the first rule decides there): debug/x and sensors/b/temp share the limit.
    expect(await store.size({ topics: ['#'], except: ['sensors/a/#'] })).toBeLessThanOrEqual(max);
    expect(seqs('sensors/a/temp')).toHaveLength(240); // positive control: under the first rule, kept
    expect(seqs('debug/x').length).toBeLessThan(240);
    expect(Math.min(...seqs('debug/x'))).toBeGreaterThan(Math.max(...all.filter((r) => r.topic === 'debug/x').map((r) => r.seq)) / 2); // the oldest went
    expect(run.storeDeletedForSize).toBe(all.length - left.length);
    if (backend === 'sqlite') {
      // The per-topic byte counts kept as readings come and go match the payloads there are.
      const db = openStoreFile(path);
      const real = db
        .prepare("SELECT coalesce(sum(length(CAST(payload AS BLOB))), 0) AS n FROM readings WHERE topic = 'debug/x'")
        .get() as { n: number };
      db.close();
      expect(await store.size({ topics: ['debug/x'] })).toBe(real.n);
    }
    await store.close();
  });

  it('keeps the store below storeMaxBytes, the oldest readings going first', async () => {
    const dir = newDir();
    const store = await openStore(backend, backend === 'sqlite' ? join(dir, 'store.db') : join(dir, 'store'));
    // Payloads that do not compress: the SQLite store deflates its blocks.
    const all = history(10).map((r) => ({ ...r, payload: { pad: randomBytes(150).toString('hex'), seq: r.seq } }));
    await store.write(batch(all));
    const full = await store.size();
    const max = Math.round(full / 3);
    // Positive control: no rule by age, and without the size limit nothing goes.
    expect(
      (await new Retention({ config: config([]), store, log: noDeadLetters, logger: quiet, now: () => NOW }).runOnce()).storeDeleted,
    ).toBe(0);
    const retention = new Retention({
      config: config([], '30d', { storeMaxBytes: max }),
      store,
      log: noDeadLetters,
      logger: quiet,
      now: () => NOW,
    });
    const run = await retention.runOnce();
    retention.stop();
    expect(await store.size()).toBeLessThanOrEqual(max);
    expect(await store.size()).toBeGreaterThan(max / 2); // no more went than the limit asks (files: an hour file at a time)
    const left = (await store.query({ limit: 100_000 })).map((r) => r.seq);
    expect(run.storeDeletedForSize).toBe(all.length - left.length);
    expect(Math.min(...left)).toBeGreaterThan(all.length / 2); // the oldest went
    await store.close();
  });
});

/** Rollups of every numeric field in 1 h and 1 d buckets, written at once. */
const hourlyAndDailyRollups = (dir: string) =>
  openRollups(
    {
      enabled: true,
      buckets: ['1h', '1d'],
      series: [],
      maxFields: 8,
      closeAfterMs: 10_000,
      batchSize: 1000,
      gatherMs: 0,
      maxGatherMs: 0,
    },
    join(dir, 'rollups.db'),
  );

/** A durable log keeping up to 100 dead letters, each payload cut at `payloadCapBytes`. */
const logWithDeadLetters = (payloadCapBytes: number) =>
  DurableLog.open({
    dir: join(newDir(), 'log'),
    agentId: 'pi',
    maxDelayMs: 2,
    maxRecords: 50,
    deadLetters: { maxCount: 100, maxBytes: 1 << 20, payloadCapBytes, whenFull: 'dropOldest' },
    logger: quiet,
  });

describe('retention of rollups', () => {
  it('deletes buckets by age per width and topic pattern, the first rule naming both deciding', async () => {
    const dir = newDir();
    const rollups = await hourlyAndDailyRollups(dir);
    await rollups.write(batch(history(10)));
    const rules: RetentionConfig['rollups'] = [
      { topics: ['sensors/a/#'], buckets: ['1h'], maxAge: '5d' },
      { topics: ['#'], buckets: ['1h'], maxAge: '2d' },
      { topics: ['#'], buckets: ['1d'], maxAge: '365d' },
    ];
    const retention = new Retention({
      config: config([], '30d', { rollups: rules }),
      rollups,
      log: noDeadLetters,
      logger: quiet,
      now: () => NOW,
    });
    const run = await retention.runOnce();
    retention.stop();
    const hours = await rollups.query({ width: HOUR, limit: 100_000 });
    const oldest = (topic: string) => Math.min(...hours.filter((r) => r.topic === topic).map((r) => r.start));
    expect(oldest('sensors/a/temp')).toBe(NOW - 5 * DAY);
    expect(oldest('sensors/b/temp')).toBe(NOW - 2 * DAY);
    expect(oldest('debug/x')).toBe(NOW - 2 * DAY);
    // Positive control: the daily buckets are all kept.
    const days = await rollups.query({ width: DAY, limit: 100_000 });
    expect(new Set(days.map((r) => r.start)).size).toBe(11); // ten days from noon to noon touch eleven calendar days
    expect(run.rollupsDeleted).toBe(((10 - 5) * 24 + 2 * (10 - 2) * 24) * 2); // two numeric fields (t, seq) a bucket
    await rollups.close();
  });

  it("keeps a rule's rollups below its maxBytes, the oldest buckets first; other topics untouched", async () => {
    const dir = newDir();
    const rollups = await hourlyAndDailyRollups(dir);
    await rollups.write(batch(history(30)));
    const debug = { topics: ['debug/#'] };
    const before = await rollups.size(debug);
    expect(before).toBeGreaterThan(0);
    expect(before).toBeLessThan(await rollups.size()); // a share of the file
    const maxBytes = Math.round(before / 4);
    const rules: RetentionConfig['rollups'] = [{ topics: ['debug/#'], buckets: ['1h', '1d'], maxBytes }];
    const retention = new Retention({
      config: config([], '30d', { rollups: rules }),
      rollups,
      log: noDeadLetters,
      logger: quiet,
      now: () => NOW,
    });
    const run = await retention.runOnce();
    retention.stop();
    expect(await rollups.size(debug)).toBeLessThanOrEqual(maxBytes);
    const hours = await rollups.query({ width: HOUR, limit: 100_000 });
    const starts = (topic: string) => hours.filter((r) => r.topic === topic).map((r) => r.start);
    expect(starts('sensors/a/temp')).toHaveLength(30 * 24 * 2); // positive control: untouched (two fields)
    expect(starts('debug/x').length).toBeLessThan(30 * 24 * 2);
    expect(Math.min(...starts('debug/x'))).toBeGreaterThan(NOW - 20 * DAY); // the oldest went
    expect(run.rollupsDeleted).toBeGreaterThan(0);
    await rollups.close();
  });
});

describe('retention, SQLite specifics and dead letters', () => {
  it('gives the space of deleted readings back (incremental vacuum); reports the longest step', async () => {
    const dir = newDir();
    const path = join(dir, 'store.db');
    const store = await openStore('sqlite', path);
    await store.write(batch(history(20).map((r) => ({ ...r, payload: { pad: randomBytes(200).toString('hex'), seq: r.seq } }))));
    const pages = () => {
      const db = new Database(path, { readonly: true });
      const n = db.pragma('page_count', { simple: true }) as number;
      db.close();
      return n;
    };
    const before = pages();
    const retention = new Retention({
      config: config([{ topics: ['#'], maxAge: '2d' }]),
      store,
      log: noDeadLetters,
      logger: quiet,
      now: () => NOW,
    });
    const run = await retention.runOnce();
    retention.stop();
    expect(run.storeDeleted).toBe(18 * 24 * 3);
    expect(pages()).toBeLessThan(before * 0.3); // the file shrank, not only emptied
    expect(run.longestStallMs).toBeGreaterThan(0);
    await store.close();
  });

  it('deletes dead letters older than their maxAge, oldest first', async () => {
    const log = await logWithDeadLetters(64);
    for (const age of [40, 35, 31, 29, 1])
      await log.appendDeadLetter({ time: NOW - age * DAY, topic: `t/${age}`, clientId: 'c', payload: Buffer.from('x'), reasons: [] });
    const retention = new Retention({ config: config([], '30d'), log, logger: quiet, now: () => NOW });
    const run = await retention.runOnce();
    retention.stop();
    expect(run.deadLettersDeleted).toBe(3);
    expect((await log.deadLetters(10)).map((d) => d.topic)).toEqual(['t/1', 't/29']);
    expect(log.stats().deadLetters).toBe(2);
    await log.close();
  });

  it('deletes dead letters by age and size per topic pattern, the first matching rule deciding', async () => {
    const log = await logWithDeadLetters(1000);
    const letter = (topic: string, ageDays: number, i = 0) =>
      log.appendDeadLetter({ time: NOW - ageDays * DAY + i, topic, clientId: 'c', payload: Buffer.alloc(500, 120), reasons: [] });
    for (let i = 0; i < 10; i++) await letter('noisy/a', 1.5, i); // about 870 bytes each; older than debug's 1d
    for (const age of [2, 0.5]) await letter('debug/x', age);
    for (const age of [40, 10]) await letter('other/y', age);
    const rules = [
      { topics: ['noisy/#'], maxBytes: 3000 },
      { topics: ['debug/#', 'noisy/#'], maxAge: '1d' }, // noisy/# is the first rule's: its age does not apply there
    ];
    const retention = new Retention({
      config: config([], '30d', { deadLetters: { maxAge: '30d', rules } }),
      log,
      logger: quiet,
      now: () => NOW,
    });
    const run = await retention.runOnce();
    retention.stop();
    const left = await log.deadLetters(100);
    const noisy = left.filter((d) => d.topic === 'noisy/a');
    expect(noisy.length).toBe(3); // the newest that fit in 3,000 bytes
    expect(Math.min(...noisy.map((d) => d.time))).toBe(NOW - 1.5 * DAY + 7);
    expect(
      left
        .filter((d) => d.topic !== 'noisy/a')
        .map((d) => `${d.topic} ${(NOW - d.time) / DAY}`)
        .sort(),
    ).toEqual(['debug/x 0.5', 'other/y 10']);
    expect(run.deadLettersDeleted).toBe(14 - left.length);
    expect(log.stats().deadLetters).toBe(left.length);
    await log.close();
  });
});

const MB = 1024 * 1024;

describe('the disk reserve and watermarks', () => {
  it('a reserve smaller than what deletions write (LevelDB compaction) is raised to it, said once; one large enough, or 0B (off), is kept', async () => {
    const dir = tempDir();
    try {
      const warnings: string[] = [];
      const logger = {
        debug() {},
        info() {},
        error() {},
        warn: (_o: object, msg: string) => warnings.push(msg),
        child: () => logger,
      } as never;
      const log = {
        holdWrites() {},
        lastSeq: 0,
        stats: () => ({ deadLetters: 0 }),
        dropOldestDeadLetters: async () => 0,
        dropOldestUnsent: async () => null,
        compact: async () => {},
      };
      // Watermarks far below the free space of the test's filesystem: level ok, nothing to give up.
      const pressure = (reserve: string, critical = '64MiB') =>
        new DiskPressure({
          dir,
          config: { intervalSec: 3600, warn: '256MiB', act: '128MiB', critical, reserve },
          stepReadings: 100,
          store: () => undefined,
          forwardedThrough: () => 0,
          rolledUpThrough: () => undefined,
          log,
          logger,
        });
      const small = pressure('8MiB');
      expect((await small.check()).watermarks.reserve).toBe(RESERVE_NEEDED);
      await small.check();
      expect(
        warnings.filter((w) => w.startsWith('retention.disk.reserve (8MiB: 8.0 MiB of this filesystem) is raised to 32 MiB')),
      ).toHaveLength(1);
      // The marks above it rise with it: critical 16 MiB becomes 32 MiB too.
      expect((await pressure('8MiB', '16MiB').check()).watermarks).toMatchObject({
        critical: RESERVE_NEEDED,
        reserve: RESERVE_NEEDED,
        act: 128 * MB,
      });
      warnings.length = 0;
      expect((await pressure(`${RESERVE_NEEDED}B`).check()).watermarks.reserve).toBe(RESERVE_NEEDED);
      expect((await pressure('0B').check()).watermarks.reserve).toBe(0);
      expect(warnings).toEqual([]);
    } finally {
      cleanup(dir);
    }
  });

  it('once at critical, ingest resumes only above act (no flapping at the mark); the reserve is left above critical', () => {
    const marks = watermarks({ intervalSec: 5, warn: '400MiB', act: '300MiB', critical: '200MiB', reserve: '100MiB' }, 10 * 1024 * MB);
    const walk = (frees: number[]) => {
      let level: PressureLevel = 'ok';
      return frees.map((f) => (level = levelAfter(level, f * MB, marks)));
    };
    // Down through every mark, then back up: each way out needs the mark above.
    expect(walk([500, 350, 250, 150, 50, 150, 250, 350, 450])).toEqual([
      'ok',
      'warn',
      'act',
      'critical',
      'reserve',
      'reserve',
      'critical',
      'warn',
      'ok',
    ]);
    // The control: without having been critical, the same free space is plain act.
    expect(walk([500, 250])).toEqual(['ok', 'act']);
    expect(walk([500, 150, 210, 190, 210, 290, 310])).toEqual(['ok', 'critical', 'critical', 'critical', 'critical', 'critical', 'warn']);
  });
});
