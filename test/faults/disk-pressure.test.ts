// Disk pressure, for real: the data directory on a small tmpfs this test mounts (CI runs as root),
// a real log, SQLite store and rollups on it, and a ballast file that takes free space away. Below
// `act` the agent gives up (a) store readings every sink has, (b) dead letters, (c) store readings
// its rollups cover, (d) unsent log chunks, in that order, each counted exactly.
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DurableLog } from '../../agent/log/durable-log.js';
import { DiskPressure, type PressureStatus } from '../../agent/retention/pressure.js';
import { openRollups, type Rollups } from '../../agent/consume/rollups/index.js';
import { openSqliteStore } from '../../agent/consume/store/sqlite.js';
import type { LocalStore } from '../../agent/consume/store/types.js';
import { ballast, freeBytes, isRoot, smallDisk, unmountDisks } from '../helpers/disk.js';
import { startAgent, type InProcessAgent } from '../helpers/agent.js';
import { connect } from '../helpers/mqtt.js';
import { adminClient, authHeader } from '../helpers/web.js';
import { createDatabase, PG_PASSWORD, TcpProxy, until } from '../helpers/servers.js';
import { TrackingPublisher } from '../helpers/tracking-publisher.js';
import { quiet } from '../helpers/logger.js';

const MB = 1024 * 1024;
const READINGS = 6000;
const SENT = 3000;
const DEAD_LETTERS = 200;

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  unmountDisks();
});

const free = freeBytes;

/**
 * The data path's parts on `dir`: 6,000 readings in the log, all in the store and the rollups;
 * the sink confirmed the first 3,000 and has 3,001-3,500 in hand (read, being sent); 200 dead letters.
 */
async function dataPath(
  dir: string,
  opts = { sent: SENT, deadLetters: DEAD_LETTERS },
): Promise<{ log: DurableLog; store: LocalStore; rollups: Rollups }> {
  const log = await DurableLog.open({
    dir: join(dir, 'log'),
    agentId: 'pi',
    maxDelayMs: 5,
    maxRecords: 500,
    deadLetters: { maxCount: 10_000, maxBytes: 64 * MB, payloadCapBytes: 4096, whenFull: 'dropOldest' },
    logger: quiet,
  });
  closers.push(() => log.close());
  const store = await openSqliteStore(join(dir, 'store.db'));
  closers.push(() => store.close());
  const rollups = await openRollups(
    {
      enabled: true,
      buckets: ['1m', '1h'],
      series: [],
      maxFields: 32,
      closeAfterMs: 10_000,
      batchSize: 10_000,
      gatherMs: 0,
      maxGatherMs: 0,
    },
    join(dir, 'rollups.db'),
  );
  closers.push(() => rollups.close());
  for (const c of ['store', 'rollups', 'sink:a']) await log.registerConsumer(c);
  let last: Promise<void> = Promise.resolve();
  for (let i = 1; i <= READINGS; i++) {
    // Random text: the log's lz4 and the store take the bytes they would for real readings.
    const payloadJson = JSON.stringify({ t: i % 40, h: i % 100, note: randomBytes(150).toString('hex') });
    last = log.append({ topic: `env/${i % 3}`, receivedAt: Date.now(), clockSynced: true, clientId: 'c', qos: 1, payloadJson }).durable;
  }
  await last;
  for (let i = 0; i < opts.deadLetters; i++)
    await log.appendDeadLetter({
      time: Date.now(),
      topic: 'bad',
      clientId: 'c',
      payload: randomBytes(2000),
      reasons: [{ path: '', message: 'test' }],
    });
  for (const [name, target] of [
    ['store', store],
    ['rollups', rollups],
  ] as const) {
    for (let after = 0; after < READINGS;) {
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

/** Marks in bytes; a reserve of 0 is off (one above 0 is raised to 32 MiB, more than these small disks hold). */
function monitor(
  dir: string,
  parts: { log: DurableLog; store: LocalStore; rollups: Rollups },
  marks: { act: number; critical: number; reserve: number },
  rolledUp = true,
): DiskPressure {
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
const rolledUpCount = async (rollups: Rollups) =>
  (await rollups.query({ width: 3_600_000, limit: 100_000 })).filter((r) => r.field === 't').reduce((n, r) => n + r.count, 0);

describe.runIf(isRoot)('disk pressure (tmpfs)', () => {
  it('gives up (a) forwarded store readings, (b) dead letters, (c) rolled-up store readings, (d) unsent chunks, in order, counted exactly', async () => {
    const dir = smallDisk(64);
    const parts = await dataPath(dir);
    // Positive control: everything is there before pressure.
    expect(await storedSeqs(parts.store)).toHaveLength(READINGS);
    expect(parts.log.stats().deadLetters).toBe(DEAD_LETTERS);
    // Free space below critical, and `act` out of reach even with all of it given up: every step runs dry.
    ballast(dir, 5 * MB);
    const pressure = monitor(dir, parts, { act: 60 * MB, critical: 8 * MB, reserve: 0 });
    const status: PressureStatus = await pressure.check();

    // Back above critical, still below act: nothing more was left to give up. Ingest, stopped at
    // critical, resumes only above act (no flapping at the mark).
    expect(status.freeBytes).toBeGreaterThan(status.watermarks.critical);
    expect(status.level).toBe('critical');
    expect(pressure.accepting).toBe(false);
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
  ] as const)(
    'step ($step) alone brings free space back above act: it stops there, oldest first',
    async ({ sent, deadLetters, rolledUp, counter }) => {
      const dir = smallDisk(64);
      const parts = await dataPath(dir, { sent, deadLetters });
      ballast(dir, 4 * MB);
      // A little more than is free now: any step with something to give gets there.
      const act = free(dir) + 96 * 1024;
      const status = await monitor(dir, parts, { act, critical: 2 * MB, reserve: 0 }, rolledUp).check();

      expect(status.freeBytes).toBeGreaterThanOrEqual(act);
      expect(status.level).toBe('ok');
      const given = {
        storeForwarded: status.relief.storeForwarded,
        deadLetters: status.relief.deadLetters,
        storeRolledUp: status.relief.storeRolledUp,
        logChunks: status.relief.logChunks,
      };
      // Only this step gave anything, and not all it had.
      expect(
        Object.entries(given)
          .filter(([, n]) => n > 0)
          .map(([k]) => k),
      ).toEqual([counter]);
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
    },
    120_000,
  );

  it('at critical ingest takes nothing new: a QoS 1 publisher gets no PUBACK and is held, then acknowledged and stored once space returns', async () => {
    const dir = smallDisk(48);
    const agent: InProcessAgent = await startAgent({
      agent: { dataDir: dir },
      store: { gatherMs: 20 },
      rollups: { gatherMs: 20 },
      retention: { disk: { intervalSec: 3600, warn: '10MB', act: '6MB', critical: '4MB', reserve: '0B' } },
    });
    closers.push(() => agent.stop());
    const client = await connect(agent.mqttUrl, { clientId: 'pressure' });
    closers.push(() => client.endAsync());
    // Positive control: acknowledged while there is room.
    await client.publishAsync('env/p', JSON.stringify({ t: 1 }), { qos: 1 });
    expect(await agent.runtime.store!.caughtUp(1, 10_000)).toBe(true);
    expect(await agent.runtime.rollups!.caughtUp(1, 10_000)).toBe(true);

    const weight = ballast(dir, 3 * MB);
    expect((await agent.runtime.disk.check()).level).toBe('critical');
    const ready = await fetch(`http://127.0.0.1:${agent.port('http')}/health/ready`, { headers: authHeader(adminClient(agent).creds) });
    expect(ready.status).toBe(503);
    expect((await ready.json()).parts).toContainEqual(expect.objectContaining({ name: 'disk', state: 'refusing: disk pressure critical' }));
    let acked = false;
    const held = client.publishAsync('env/p', JSON.stringify({ t: 2 }), { qos: 1 }).then(() => (acked = true));
    // The publish reached the broker and waits there (counted), with no PUBACK.
    await until(() => agent.runtime.ingestStats.heldForDisk > 0, 10_000, 'the publish held');
    expect(agent.runtime.ingestStats.heldForDisk).toBe(1);
    // Two more looks at the disk, each of which would let it in if there were room: still held.
    for (let i = 0; i < 2; i++) expect((await agent.runtime.disk.check()).level).toBe('critical');
    expect(acked).toBe(false);
    expect(agent.runtime.log.lastSeq).toBe(1); // nothing taken into the log either

    rmSync(weight);
    expect((await agent.runtime.disk.check()).level).toBe('ok');
    await held;
    expect(acked).toBe(true);
    expect(await agent.runtime.store!.caughtUp(2, 10_000)).toBe(true);
    expect(await agent.runtime.rollups!.caughtUp(2, 10_000)).toBe(true);
    // No sinks: reading 1 had reached every sink there is, and went first under pressure (step a).
    expect(agent.runtime.disk.status().relief.storeForwarded).toBe(1);
    expect((await agent.runtime.store!.target.query({ topic: 'env/p' })).map((r) => r.payload)).toEqual([{ t: 2 }]);
    const rolled = await agent.runtime.rollups!.target.query({ topic: 'env/p', width: 60_000 });
    expect(rolled.reduce((n, r) => n + r.count, 0)).toBe(2);
    expect(agent.runtime.log.stats().dropped).toEqual({}); // every consumer had reading 1: nothing unsent to drop
  }, 60_000);

  it('at the reserve nothing but deletions is written: a commit waits (the log says why) and goes through once space returns', async () => {
    const dir = smallDisk(48);
    const agent: InProcessAgent = await startAgent({
      agent: { dataDir: dir },
      retention: { disk: { intervalSec: 3600, warn: '10MB', act: '6MB', critical: '5MB', reserve: '4MB' } },
    });
    closers.push(() => agent.stop());
    const reading = (t: number) => ({
      topic: 'env/r',
      receivedAt: Date.now(),
      clockSynced: true,
      clientId: 'c',
      qos: 1 as const,
      payloadJson: JSON.stringify({ t }),
    });
    await agent.runtime.log.append(reading(1)).durable; // positive control: commits go through with room

    const weight = ballast(dir, 3 * MB);
    expect((await agent.runtime.disk.check()).level).toBe('reserve');
    let durable = false;
    const second = agent.runtime.log.append(reading(2)).durable.then(() => (durable = true));
    await until(() => agent.runtime.log.status().state !== 'ok', 10_000, 'the log refusing');
    expect(agent.runtime.log.status().state).toBe('refusing: disk reserve reached');
    expect(durable).toBe(false);

    rmSync(weight);
    expect(['ok', 'warn']).toContain((await agent.runtime.disk.check()).level);
    await second;
    expect(agent.runtime.log.status().state).toBe('ok');
    expect(agent.runtime.log.lastSeq).toBe(2);
  }, 60_000);

  it('free space is read again after every few MB the agent writes, not only on the timer: no watermark is skipped, the reserve never crossed', async () => {
    const dir = smallDisk(192);
    // The timer is off in effect (an hour): only what the agent writes can make it look again.
    const agent: InProcessAgent = await startAgent({
      agent: { dataDir: dir },
      rollups: { enabled: false },
      retention: { disk: { intervalSec: 3600, warn: '120MB', act: '110MB', critical: '80MB', reserve: '40MB' } },
    });
    closers.push(() => agent.stop());
    const ballasts = [ballast(dir, 125 * 1000 * 1000)];
    closers.push(async () => ballasts.forEach((b) => rmSync(b, { force: true })));
    expect((await agent.runtime.disk.check()).level).toBe('ok'); // the control: above warn when writing starts
    let minFree = free(dir);
    const sampler = setInterval(() => (minFree = Math.min(minFree, free(dir))), 2);
    closers.push(async () => clearInterval(sampler));
    // 4 kB readings of random text, as fast as the agent takes them: tens of MB in seconds.
    const publishers = [0, 1, 2, 3].map((i) => new TrackingPublisher(`fast-${i}`, 'load/fast', 20, 4000));
    publishers.forEach((p) => p.start(agent.port('mqtt')));
    await until(() => agent.runtime.disk.status().relief.storeForwarded > 0 || undefined, 60_000, 'relief after writes alone');
    publishers.forEach((p) => p.stop());
    clearInterval(sampler);
    const { watermarks } = agent.runtime.disk.status();
    expect(watermarks.reserve).toBe(40 * 1000 * 1000);
    expect(minFree).toBeGreaterThan(watermarks.reserve);
    expect(publishers.reduce((n, p) => n + p.acked.size, 0)).toBeGreaterThan(2000); // the writing did happen
  }, 120_000);

  it("free space is read while a relief is slow: writes during it still meet critical and the reserve, the store's counted too", async () => {
    const dir = smallDisk(128);
    const parts = await dataPath(dir, { sent: 0, deadLetters: 0 });
    // The store's deletion waits (as on a CPU-starved database thread) until the test lets it go.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let pruning = false;
    const slowStore = Object.assign(Object.create(parts.store) as LocalStore, {
      prune: async (...args: Parameters<LocalStore['prune']>) => {
        pruning = true;
        await gate;
        return parts.store.prune(...args);
      },
    });
    const pressure = new DiskPressure({
      dir,
      config: { intervalSec: 3600, warn: '90000000B', act: '90000000B', critical: '70000000B', reserve: '40000000B' },
      stepReadings: 500,
      store: () => slowStore,
      forwardedThrough: () => parts.log.lastSeq, // every reading forwarded: the store's deletion is the first step
      rolledUpThrough: () => undefined,
      log: parts.log,
      logger: quiet,
    });
    closers.push(async () => {
      release();
      pressure.stop();
    });
    await pressure.start();
    expect(pressure.status().level).toBe('ok');
    // Below act: the relief starts and hangs in the store's deletion.
    const ballasts = [ballast(dir, 85_000_000)];
    pressure.wrote(4 * MB); // more than an eighth of the smallest gap (20 MB between act and critical)
    await until(() => pruning || undefined, 10_000, 'the relief in the store');
    expect(pressure.status().level).toBe('act');
    expect(await pressure.admit(0)).toBeUndefined(); // the control: above the reserve a write may go on

    // Readings committed during it take free space below critical: ingest stops though the relief still hangs.
    ballasts.push(ballast(dir, 60_000_000));
    pressure.wrote(4 * MB);
    await until(() => pressure.status().level === 'critical' || undefined, 10_000, 'critical during the relief');
    expect(pressure.accepting).toBe(false);
    expect(pruning).toBe(true);

    // The store's writes count as the log's do: a small one makes no read due, a bigger one reads first and is held.
    ballasts.push(ballast(dir, 35_000_000));
    expect(await pressure.admit(64 * 1024)).toBeUndefined();
    expect(await pressure.admit(4 * MB)).toBe('disk reserve reached');
    expect(pressure.status().level).toBe('reserve');

    ballasts.forEach((b) => rmSync(b));
    release();
    await until(async () => ((await pressure.check()).level === 'ok' ? true : undefined), 10_000, 'back to ok');
    expect(await pressure.admit(4 * MB)).toBeUndefined();
  }, 60_000);

  it('a sink down while readings fill the disk: the agent stays up, the disk never fills, every reading is in the sink or counted as dropped, and ingest resumes once space is freed', async () => {
    const db = await createDatabase();
    const proxy = await new TcpProxy(db.port).listen();
    closers.push(() => db.drop());
    closers.push(() => proxy.close());
    proxy.cut(); // the sink is down from the start
    // The reserve must hold what deletions write: LevelDB flushes its write buffer and compacts
    // several of its files into new ones before the old go. 3 MB (tried first) let the filesystem fill.
    const dir = smallDisk(128);
    const schema = { name: 'load', topics: ['load/#'], fields: { key: { type: 'string', required: true }, v: 'integer', pad: 'string' } };
    const agent: InProcessAgent = await startAgent({
      agent: { dataDir: dir },
      ingest: { schemas: [schema] },
      store: { gatherMs: 50 },
      rollups: { gatherMs: 50 },
      // Small batches: what a consumer holds in hand (never dropped) stays small beside this small disk.
      sinks: [
        {
          name: 'cloud',
          type: 'postgres',
          url: `postgres://edge_test@127.0.0.1:${proxy.port}/${db.name}`,
          password: PG_PASSWORD,
          table: 'pressure',
          batch: { maxAgeMs: 50, maxRecords: 200, maxBytes: 128 * 1024 },
          retry: { initialMs: 100, maxMs: 500 },
          timeoutMs: 3000,
        },
      ],
      retention: { disk: { intervalSec: 1, warn: '40MB', act: '36MB', critical: '30MB', reserve: '20MB' } },
    });
    closers.push(() => agent.stop());
    const ballasts = [ballast(dir, 44 * MB)];
    closers.push(async () => ballasts.forEach((b) => rmSync(b, { force: true })));
    let minFree = free(dir);
    const sampler = setInterval(() => (minFree = Math.min(minFree, free(dir))), 5);
    closers.push(async () => clearInterval(sampler));

    // 50 readings their schema refuses: dead letters, for step (b).
    const bad = await connect(agent.mqttUrl, { clientId: 'bad' });
    for (let i = 0; i < 50; i++) await bad.publishAsync('load/x', JSON.stringify({ v: 'not a number' }), { qos: 1 });
    await bad.endAsync();
    expect(agent.runtime.log.stats().deadLetters).toBe(50);

    // Readings of 400 random bytes until pressure has made the agent drop unsent chunks (step d).
    const publishers = [new TrackingPublisher('fill-a', 'load/a', 5, 400), new TrackingPublisher('fill-b', 'load/b', 5, 400)];
    publishers.forEach((p) => p.start(agent.port('mqtt')));
    await until(() => agent.runtime.disk.status().relief.logChunks >= 3 || undefined, 90_000, 'unsent chunks dropped');
    publishers.forEach((p) => p.stop());
    const relief = agent.runtime.disk.status().relief;
    expect(relief.deadLetters).toBe(50); // (b) ran dry before (d) began
    expect(agent.runtime.log.stats().deadLetters).toBe(0);
    expect(relief.storeRolledUp).toBeGreaterThan(0); // (c) too
    expect(relief.storeForwarded).toBe(0); // (a) had nothing: the sink had nothing yet

    // Ingest stops below critical and resumes once space is freed. Ballast is added until what the
    // agent may delete is gone and free space stays below critical.
    const probe = new TrackingPublisher('probe', 'load/probe', 1);
    probe.start(agent.port('mqtt'));
    await until(() => probe.acked.size >= 5 || undefined, 10_000, 'probe acknowledged');
    const heldBefore = agent.runtime.ingestStats.heldForDisk;
    for (let i = 0; i < 10 && agent.runtime.disk.accepting; i++) {
      ballasts.push(ballast(dir, 25 * MB));
      await agent.runtime.disk.check();
    }
    expect(agent.runtime.disk.accepting).toBe(false);
    // The probe has one reading out at a time: once one is held at the door or waits for a commit,
    // nothing more is acknowledged, across two more looks at the disk.
    await until(
      () => agent.runtime.ingestStats.heldForDisk > heldBefore || agent.runtime.log.status().state !== 'ok',
      10_000,
      'the probe held',
    );
    const heldAt = probe.acked.size;
    for (let i = 0; i < 2; i++) await agent.runtime.disk.check();
    expect(probe.acked.size).toBe(heldAt);
    // Held at the door (critical), or its reading waits for a commit (the reserve): either way unacknowledged.
    expect(agent.runtime.ingestStats.heldForDisk > 0 || agent.runtime.log.status().state !== 'ok').toBe(true);
    ballasts.splice(1).forEach((b) => rmSync(b));
    await until(
      async () =>
        (await agent.runtime.disk.check()).level === 'ok' || (agent.runtime.disk.accepting && probe.acked.size > heldAt) || undefined,
      20_000,
      'ingest resumed',
    );
    await until(() => probe.acked.size > heldAt + 5 || undefined, 20_000, 'probe acknowledged again');
    probe.stop();

    // The sink comes back and drains; then every count is checked against what is there. (A reading
    // held at the door when its publisher left is still taken once there is room: lastSeq is read last.)
    proxy.restore();
    await until(async () => ((await agent.runtime.sync.status())[0].lagRecords === 0 ? true : undefined), 60_000, 'sink drained');
    const lastSeq = agent.runtime.log.lastSeq;
    expect(await agent.runtime.store!.caughtUp(lastSeq, 30_000)).toBe(true);
    expect(await agent.runtime.rollups!.caughtUp(lastSeq, 30_000)).toBe(true);
    agent.runtime.disk.stop();
    const final = agent.runtime.disk.status().relief;
    const dropped = agent.runtime.log.stats().dropped;
    const sinkDropped = dropped['sink:cloud']?.['disk pressure'] ?? 0;
    expect(sinkDropped).toBeGreaterThan(0);
    expect(final.logReadings['sink:cloud']).toBe(sinkDropped);

    const [{ rows, keys }] = (await db.query(
      "SELECT count(*)::int AS rows, count(DISTINCT payload->>'key')::int AS keys FROM pressure",
    )) as { rows: number; keys: number }[];
    expect(keys).toBe(rows); // none twice
    expect(rows + sinkDropped).toBe(lastSeq); // every reading is in the sink or counted as dropped for it
    const inSink = new Set(((await db.query("SELECT payload->>'key' AS key FROM pressure")) as { key: string }[]).map((r) => r.key));
    const ackedMissing = [...publishers, probe].flatMap((p) => [...p.acked]).filter((k) => !inSink.has(k));
    expect(ackedMissing.length).toBeLessThanOrEqual(sinkDropped);

    const stored = (await agent.runtime.store!.target.query({ limit: 10_000_000 })).length;
    expect(stored).toBe(lastSeq - final.storeForwarded - final.storeRolledUp - (dropped.store?.['disk pressure'] ?? 0));
    const rolled = (await agent.runtime.rollups!.target.query({ width: 86_400_000, fields: ['v'], limit: 100_000 })).reduce(
      (n, r) => n + r.count,
      0,
    );
    expect(rolled).toBe(lastSeq - (dropped.rollups?.['disk pressure'] ?? 0));
    expect(minFree).toBeGreaterThan(0); // the filesystem never filled up
  }, 240_000);
});
