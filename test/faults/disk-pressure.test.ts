// Disk pressure, for real: the data directory on a small tmpfs this test mounts (CI runs as root),
// a real log, SQLite store and rollups on it, and a ballast file that takes free space away. Below
// `act` the agent gives up (a) store readings every sink has, (b) dead letters, (c) store readings
// its rollups cover, (d) unsent log chunks, in that order, each counted exactly.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DurableLog } from '../../agent/buffer/log.js';
import { DiskPressure, type PressureStatus } from '../../agent/retention/pressure.js';
import { openRollups, type Rollups } from '../../agent/rollup/index.js';
import { openSqliteStore } from '../../agent/store/sqlite.js';
import type { LocalStore } from '../../agent/store/types.js';
import { cleanup, startAgent, tempDir, type InProcessAgent } from '../helpers/agent.js';
import { connect } from '../helpers/mqtt.js';

const isRoot = process.getuid?.() === 0;
const quiet = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet } as never;
const MB = 1024 * 1024;
const READINGS = 6000;
const SENT = 3000;
const DEAD_LETTERS = 200;

const mounts: string[] = [];
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  for (const m of mounts.splice(0)) {
    execFileSync('umount', ['-l', m]);
    cleanup(join(m, '..'));
  }
});

function smallDisk(mb: number): string {
  const mnt = join(tempDir(), 'data');
  mkdirSync(mnt);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${mb}m,mode=0700`, 'tmpfs', mnt]);
  mounts.push(mnt);
  return mnt;
}

const free = (dir: string) => {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
};

/** Take space until `leave` bytes are free; returns the ballast's path. */
function ballast(dir: string, leave: number): string {
  const path = join(dir, `ballast-${randomBytes(4).toString('hex')}`);
  const fd = openSync(path, 'w');
  const block = Buffer.alloc(64 * 1024, 1);
  try {
    while (free(dir) - block.length >= leave) writeSync(fd, block);
  } finally {
    closeSync(fd);
  }
  return path;
}

/**
 * The data path's parts on `dir`: 6,000 readings in the log, all in the store and the rollups;
 * the sink confirmed the first 3,000 and has 3,001-3,500 in hand (read, being sent); 200 dead letters.
 */
async function dataPath(dir: string, opts = { sent: SENT, deadLetters: DEAD_LETTERS }): Promise<{ log: DurableLog; store: LocalStore; rollups: Rollups }> {
  const log = await DurableLog.open({ dir: join(dir, 'log'), agentId: 'pi', maxDelayMs: 5, maxRecords: 500, deadLetters: { maxCount: 10_000, maxBytes: 64 * MB, payloadCapBytes: 4096 }, log: quiet });
  closers.push(() => log.close());
  const store = await openSqliteStore(join(dir, 'store.db'));
  closers.push(() => store.close());
  const rollups = await openRollups({ enabled: true, buckets: ['1m', '1h'], series: [], maxFields: 32, closeAfterMs: 10_000, batchSize: 10_000, gatherMs: 0 }, join(dir, 'rollups.db'));
  closers.push(() => rollups.close());
  for (const c of ['store', 'rollups', 'sink:a']) await log.registerConsumer(c);
  let last: Promise<void> = Promise.resolve();
  for (let i = 1; i <= READINGS; i++) {
    // Random text: the log's lz4 and the store take the bytes they would for real readings.
    const payloadJson = JSON.stringify({ t: i % 40, h: i % 100, note: randomBytes(150).toString('hex') });
    last = log.append({ topic: `env/${i % 3}`, receivedAt: Date.now(), clockSynced: true, clientId: 'c', qos: 1, payloadJson }).durable;
  }
  await last;
  for (let i = 0; i < opts.deadLetters; i++) await log.appendDeadLetter({ time: Date.now(), topic: 'bad', clientId: 'c', payload: randomBytes(2000), reasons: [{ path: '', message: 'test' }] });
  for (const [name, target] of [['store', store], ['rollups', rollups]] as const) {
    for (let after = 0; after < READINGS; ) {
      const batch = (await log.readChunks(name, after, 1000))!;
      await target.write(batch);
      await log.commit(name, batch.lastSeq);
      after = batch.lastSeq;
    }
  }
  await log.commit('sink:a', opts.sent);
  expect((await log.readTexts('sink:a', opts.sent, 500))!.lastSeq).toBe(opts.sent + 500); // in the sink's hands
  return { log, store, rollups };
}

function monitor(dir: string, parts: { log: DurableLog; store: LocalStore; rollups: Rollups }, marks: { act: number; critical: number; reserve: number }, rolledUp = true): DiskPressure {
  const b = (n: number) => `${Math.round(n)}B`;
  return new DiskPressure({
    dir,
    config: { intervalSec: 3600, warn: b(marks.act), act: b(marks.act), critical: b(marks.critical), reserve: b(marks.reserve) },
    stepReadings: 500,
    store: () => parts.store,
    forwardedThrough: () => Math.min(parts.log.lastSeq, parts.log.cursor('sink:a')),
    rolledUpThrough: () => (rolledUp ? parts.log.cursor('rollups') : undefined),
    log: parts.log,
    logger: quiet,
  });
}

const storedSeqs = async (store: LocalStore) => (await store.query({ limit: 100_000 })).map((r) => r.seq);
const rolledUpCount = async (rollups: Rollups) => (await rollups.query({ width: 3_600_000, limit: 100_000 })).filter((r) => r.field === 't').reduce((n, r) => n + r.count, 0);

describe.runIf(isRoot)('disk pressure (tmpfs)', () => {
  it('gives up (a) forwarded store readings, (b) dead letters, (c) rolled-up store readings, (d) unsent chunks, in order, counted exactly', async () => {
    const dir = smallDisk(64);
    const parts = await dataPath(dir);
    // Positive control: everything is there before pressure.
    expect(await storedSeqs(parts.store)).toHaveLength(READINGS);
    expect(parts.log.stats().deadLetters).toBe(DEAD_LETTERS);
    // Free space below critical, and `act` out of reach even with all of it given up: every step runs dry.
    ballast(dir, 5 * MB);
    const pressure = monitor(dir, parts, { act: 60 * MB, critical: 8 * MB, reserve: 1 * MB });
    const status: PressureStatus = await pressure.check();

    // Back above critical (ingest takes readings again), still below act: nothing more was left to give up.
    expect(status.level).toBe('act');
    expect(pressure.accepting).toBe(true);
    expect(status.relief).toEqual({
      storeForwarded: SENT, // (a) every reading the sink confirmed
      deadLetters: DEAD_LETTERS, // (b)
      storeRolledUp: READINGS - SENT, // (c) the rest: the rollups hold them all
      logChunks: 5, // (d) 3,501-6,000 in chunks of 500; 3,001-3,500 is in the sink's hands
      logReadings: { 'sink:a': 2500 }, // the store and the rollups had confirmed them: nothing lost for them
    });
    expect(parts.log.stats().dropped).toEqual({ 'sink:a': { 'disk pressure': 2500 } });
    expect(await storedSeqs(parts.store)).toEqual([]);
    expect(parts.log.stats().deadLetters).toBe(0);
    // The rollups keep every reading the raw store gave up.
    expect(await rolledUpCount(parts.rollups)).toBe(READINGS);
    // The reading in the sink's hands is still there for it, and after it nothing (dropped).
    const held = await parts.log.readTexts('sink:a', SENT, 10_000);
    expect([held!.firstSeq, held!.lastSeq]).toEqual([SENT + 1, SENT + 500]);
  }, 120_000);

  // Each step in turn is made the first with anything to give, and gives just enough: the steps after it never run.
  it.each([
    { step: 'a', sent: SENT, deadLetters: DEAD_LETTERS, rolledUp: true, counter: 'storeForwarded' },
    { step: 'b', sent: 0, deadLetters: DEAD_LETTERS, rolledUp: true, counter: 'deadLetters' },
    { step: 'c', sent: 0, deadLetters: 0, rolledUp: true, counter: 'storeRolledUp' },
    { step: 'd', sent: 0, deadLetters: 0, rolledUp: false, counter: 'logChunks' },
  ] as const)('step ($step) alone brings free space back above act: it stops there, oldest first', async ({ sent, deadLetters, rolledUp, counter }) => {
    const dir = smallDisk(64);
    const parts = await dataPath(dir, { sent, deadLetters });
    ballast(dir, 4 * MB);
    // A little more than is free now: any step with something to give gets there.
    const act = free(dir) + 96 * 1024;
    const status = await monitor(dir, parts, { act, critical: 2 * MB, reserve: 1 * MB }, rolledUp).check();

    expect(status.freeBytes).toBeGreaterThanOrEqual(act);
    expect(status.level).toBe('ok');
    const given = { storeForwarded: status.relief.storeForwarded, deadLetters: status.relief.deadLetters, storeRolledUp: status.relief.storeRolledUp, logChunks: status.relief.logChunks };
    // Only this step gave anything, and not all it had.
    expect(Object.entries(given).filter(([, n]) => n > 0).map(([k]) => k)).toEqual([counter]);
    const left = await storedSeqs(parts.store);
    if (counter === 'storeForwarded' || counter === 'storeRolledUp') {
      expect(given[counter]).toBeLessThan(counter === 'storeForwarded' ? sent : READINGS);
      expect(left[0]).toBe(given[counter] + 1); // the oldest went first
    } else {
      expect(left).toHaveLength(READINGS);
    }
    if (counter === 'deadLetters') expect(parts.log.stats().deadLetters).toBe(DEAD_LETTERS - given.deadLetters);
    if (counter === 'logChunks') {
      // The oldest chunk not in the sink's hands (1-500 is) went first: 501-1000, counted for the sink only.
      expect(given.logChunks).toBeLessThan(READINGS / 500 - 1);
      expect(status.relief.logReadings).toEqual({ 'sink:a': given.logChunks * 500 });
      expect((await parts.log.readTexts('sink:a', 500, 1))!.firstSeq).toBe(500 + given.logChunks * 500 + 1);
    } else {
      expect(parts.log.stats().dropped).toEqual({});
    }
  }, 120_000);

  it('at critical ingest takes nothing new: a QoS 1 publisher gets no PUBACK and is held, then acknowledged and stored once space returns', async () => {
    const dir = smallDisk(48);
    const agent: InProcessAgent = await startAgent({ agent: { dataDir: dir }, store: { gatherMs: 20 }, rollups: { gatherMs: 20 }, retention: { disk: { intervalSec: 3600, warn: '10MB', act: '6MB', critical: '4MB', reserve: '1MB' } } });
    closers.push(() => agent.stop());
    const client = await connect(agent.mqttUrl, { clientId: 'pressure' });
    closers.push(() => client.endAsync());
    // Positive control: acknowledged while there is room.
    await client.publishAsync('env/p', JSON.stringify({ t: 1 }), { qos: 1 });
    expect(await agent.runtime.storeCaughtUp(1, 10_000)).toBe(true);
    expect(await agent.runtime.rollupsCaughtUp(1, 10_000)).toBe(true);

    const weight = ballast(dir, 3 * MB);
    expect((await agent.runtime.disk.check()).level).toBe('critical');
    const ready = await fetch(`http://127.0.0.1:${agent.port('http')}/health/ready`);
    expect(ready.status).toBe(503);
    expect((await ready.json()).parts).toContainEqual(expect.objectContaining({ name: 'disk', state: 'refusing: disk pressure critical' }));
    let acked = false;
    const held = client.publishAsync('env/p', JSON.stringify({ t: 2 }), { qos: 1 }).then(() => (acked = true));
    // The publish reached the broker and waits there (counted), with no PUBACK.
    const deadline = Date.now() + 10_000;
    while (agent.runtime.ingestStats.heldForDisk === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(agent.runtime.ingestStats.heldForDisk).toBe(1);
    await new Promise((r) => setTimeout(r, 300));
    expect(acked).toBe(false);
    expect(agent.runtime.log.lastSeq).toBe(1); // nothing taken into the log either

    rmSync(weight);
    expect((await agent.runtime.disk.check()).level).toBe('ok');
    await held;
    expect(acked).toBe(true);
    expect(await agent.runtime.storeCaughtUp(2, 10_000)).toBe(true);
    expect(await agent.runtime.rollupsCaughtUp(2, 10_000)).toBe(true);
    // No sinks: reading 1 had reached every sink there is, and went first under pressure (step a).
    expect(agent.runtime.disk.status().relief.storeForwarded).toBe(1);
    expect((await agent.runtime.store!.query({ topic: 'env/p' })).map((r) => r.payload)).toEqual([{ t: 2 }]);
    const rolled = await agent.runtime.rollups!.query({ topic: 'env/p', width: 60_000 });
    expect(rolled.reduce((n, r) => n + r.count, 0)).toBe(2);
    expect(agent.runtime.log.stats().dropped).toEqual({}); // every consumer had reading 1: nothing unsent to drop
  }, 60_000);

  it('at the reserve nothing but deletions is written: a commit waits (the log says why) and goes through once space returns', async () => {
    const dir = smallDisk(48);
    const agent: InProcessAgent = await startAgent({ agent: { dataDir: dir }, retention: { disk: { intervalSec: 3600, warn: '10MB', act: '6MB', critical: '5MB', reserve: '4MB' } } });
    closers.push(() => agent.stop());
    const reading = (t: number) => ({ topic: 'env/r', receivedAt: Date.now(), clockSynced: true, clientId: 'c', qos: 1 as const, payloadJson: JSON.stringify({ t }) });
    await agent.runtime.log.append(reading(1)).durable; // positive control: commits go through with room

    const weight = ballast(dir, 3 * MB);
    expect((await agent.runtime.disk.check()).level).toBe('reserve');
    let durable = false;
    const second = agent.runtime.log.append(reading(2)).durable.then(() => (durable = true));
    const deadline = Date.now() + 10_000;
    while (agent.runtime.log.status().state === 'ok' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(agent.runtime.log.status().state).toBe('refusing: disk reserve reached');
    expect(durable).toBe(false);

    rmSync(weight);
    expect(['ok', 'warn']).toContain((await agent.runtime.disk.check()).level);
    await second;
    expect(agent.runtime.log.status().state).toBe('ok');
    expect(agent.runtime.log.lastSeq).toBe(2);
  }, 60_000);
});
