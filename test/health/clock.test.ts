// The clock: readings received while it is unsynchronised carry their boot's monotonic time; once
// it synchronises their times are corrected before any consumer takes them (the local store, the
// rollups, a PostgreSQL sink), the correction is recorded, the log keeps its order, and retention
// deletes nothing for its age while the clock cannot be trusted. An injected clock jumps both ways.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Clock } from '../../agent/ingest/clock.js';
import { TestClock } from '../helpers/clock.js';
import { decodeRecord, encodeRecord, splitRecord, type NewRecord } from '../../agent/log/record.js';
import { cleanup, startAgent, tempDir, type InProcessAgent } from '../helpers/agent.js';
import { connect } from '../helpers/mqtt.js';
import { createDatabase, PG_PASSWORD, until, type TestDatabase } from '../helpers/servers.js';
import { join } from 'node:path';
import { toOutRecord } from '../../agent/consume/sinks/record.js';
import { envelope } from '../../agent/consume/sinks/mqtt/index.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const reading = (stamp: Pick<NewRecord, 'receivedAt' | 'clockSynced' | 'boot' | 'mono'>): NewRecord => ({
  topic: 'env/a',
  ...stamp,
  clientId: 'c',
  qos: 1,
  payloadJson: '{"t":1}',
});

describe('clock correction', () => {
  it.each([
    ['backwards (the clock was 3 days ahead)', 3 * DAY],
    ['forwards (the clock was 3 days behind: the last shutdown time)', -3 * DAY],
  ])('corrects times after a jump %s, records by how much, and keeps other boots apart', (_what, error) => {
    const truth = Date.UTC(2026, 11, 1, 12);
    const source = new TestClock('boot-a', truth + error);
    const dir = tempDir();
    try {
      const clock = new Clock(source, { holdSec: 300, offsetsFile: join(dir, 'offsets.json') });
      const stamp = clock.stamp();
      expect(stamp).toMatchObject({ clockSynced: false, boot: 'boot-a', mono: expect.any(Number) });
      expect(clock.holding()).toBe(true);
      expect(clock.trusted()).toBe(false);
      const line = encodeRecord(7, reading(stamp));
      const otherBoot = encodeRecord(8, reading({ ...stamp, boot: 'boot-z' }));
      expect(splitRecord(line, clock.offsets()).head).toMatchObject({ receivedAt: stamp.receivedAt }); // no offset known yet

      source.set(truth + 5);
      source.state = true;
      const offsets = clock.offsets();
      const { head } = splitRecord(line, offsets);
      expect(head.receivedAt - (truth + 5)).toBeLessThanOrEqual(0);
      expect(head.receivedAt).toBe(stamp.mono! + offsets['boot-a']);
      expect(head.clockCorrectionMs).toBe(head.receivedAt - stamp.receivedAt);
      expect(Math.abs(head.clockCorrectionMs! + error)).toBeLessThan(1000);
      expect(head.seq).toBe(7);
      expect(head).not.toHaveProperty('boot');
      expect(head).not.toHaveProperty('mono');
      // The JSON.parse path (the files store, Influx) corrects the same way.
      expect(decodeRecord(line, 'pi', offsets)).toMatchObject({
        receivedAt: head.receivedAt,
        clockCorrectionMs: head.clockCorrectionMs,
        clockSynced: false,
      });
      // A reading of another boot whose offset is unknown keeps its time, marked unsynchronised.
      const other = decodeRecord(otherBoot, 'pi', offsets);
      expect(other).toMatchObject({ receivedAt: stamp.receivedAt, clockSynced: false });
      expect(other).not.toHaveProperty('clockCorrectionMs');
      expect(other).not.toHaveProperty('boot');

      // After a reboot, still unsynchronised: the last boot's offset was kept, so its readings left in the log are corrected.
      const rebooted = new Clock(new TestClock('boot-b', truth - 10 * DAY), { holdSec: 300, offsetsFile: join(dir, 'offsets.json') });
      expect(splitRecord(line, rebooted.offsets()).head.receivedAt).toBe(head.receivedAt);
      expect(rebooted.holding()).toBe(true);
    } finally {
      cleanup(dir);
    }
  });

  it('reaches a sink corrected: the MQTT record envelope says by how much', () => {
    const line = encodeRecord(3, reading({ receivedAt: 1000, clockSynced: false, boot: 'b1', mono: 500 }));
    expect(JSON.parse(envelope(toOutRecord(line, 'pi', { b1: 1_700_000_000_000 })))).toMatchObject({
      seq: 3,
      receivedAt: 1_700_000_000_500,
      clockCorrectionMs: 1_700_000_000_500 - 1000,
    });
    expect(JSON.parse(envelope(toOutRecord(line, 'pi', {})))).not.toHaveProperty('clockCorrectionMs'); // the control
  });

  it("keeps this boot's offset from its first synchronisation: a later slew or step does not move readings already corrected elsewhere", () => {
    const source = new TestClock('boot-a', Date.now());
    const clock = new Clock(source, { holdSec: 60 });
    expect(clock.offsets()).toEqual({}); // the control: nothing known while unsynchronised
    source.state = true;
    const first = clock.offsets()['boot-a'];
    expect(first).toBe(source.offset);
    source.set(Date.now() + 800); // slewed while synchronised
    expect(source.offset).not.toBe(first);
    expect(clock.offsets()).toEqual({ 'boot-a': first });
    source.state = false;
    source.set(Date.now() - 3_600_000); // lost, jumped, synchronised again
    source.set(Date.now());
    source.state = true;
    expect(clock.offsets()).toEqual({ 'boot-a': first });
  });

  it('stops holding after holdSec, and never holds when nothing can tell whether the clock is synchronised', () => {
    const source = new TestClock('boot-a', Date.now());
    const clock = new Clock(source, { holdSec: 60 });
    expect(clock.holding()).toBe(true);
    source.skipped = 61_000;
    expect(clock.holding()).toBe(false);
    source.state = undefined;
    const unknown = new Clock(source, { holdSec: 60 });
    expect(unknown.holding()).toBe(false);
    expect(unknown.trusted()).toBe(true);
    expect(unknown.stamp()).toEqual({ receivedAt: expect.any(Number), clockSynced: false }); // marked, but nothing to correct it with
  });
});

describe('clock correction in a running agent', () => {
  let db: TestDatabase;
  let agent: InProcessAgent;
  const truth = Date.now();
  const source = new TestClock('boot-a', truth);
  source.state = true;

  beforeAll(async () => {
    db = await createDatabase();
    agent = await startAgent(
      {
        health: { clock: { holdSec: 3600 } },
        store: { gatherMs: 20 },
        rollups: { enabled: true, buckets: ['1m'], gatherMs: 20 },
        retention: { store: [{ topics: ['#'], maxAge: '1d' }] },
        sinks: [{ name: 'cloud', type: 'postgres', url: db.url, password: PG_PASSWORD, table: 'clocked', batch: { maxAgeMs: 20 } }],
      },
      tempDir(),
      { clockSource: source },
    );
  });
  afterAll(async () => {
    await agent?.stop();
    if (agent) cleanup(agent.dir);
    await db?.drop();
  });

  const pgRows = () =>
    db.query<{ seq: string; received_at: Date; clock_synced: boolean; clock_correction_ms: string | null; t: number }>(
      "SELECT seq, received_at, clock_synced, clock_correction_ms, (payload->>'t')::int AS t FROM clocked ORDER BY seq",
    );
  const storeStatus = () => agent.runtime.store!.status();

  it('holds consumers while unsynchronised, then delivers corrected times in log order, after a jump each way', async () => {
    const mqtt = await connect(agent.mqttUrl);
    const publish = (t: number) => mqtt.publishAsync('env/a', JSON.stringify({ t }), { qos: 1 });
    try {
      // Synchronised: a reading goes through at once (the positive control for what follows).
      await publish(0);
      await until(async () => (await pgRows()).length === 1, 20_000, 'the synchronised reading in PostgreSQL');

      // The clock loses sync and reads 2 hours behind (a Pi's fake-hwclock after a power cut).
      const behind = 2 * HOUR;
      source.state = false;
      source.set(Date.now() - behind);
      await publish(1);
      await publish(2);
      await until(() => storeStatus().waitingForClock && storeStatus().lagRecords === 2, 20_000, 'the store held with 2 readings waiting');
      const held = await until(
        async () => (await agent.runtime.sync.status())[0].waitingForClock && (await agent.runtime.sync.status())[0],
        20_000,
        'the sink held',
      );
      expect(held.lagRecords).toBe(2);
      expect(await pgRows()).toHaveLength(1);
      expect(await agent.runtime.store!.target.query({ topic: 'env/a' })).toHaveLength(1);
      // Retention deletes nothing for its age meanwhile, even told it is a year later...
      expect((await agent.runtime.retention.runOnce(Date.now() + 365 * DAY)).storeDeleted).toBe(0);

      // ...NTP steps the clock 2 hours forward: both readings go on, corrected.
      source.set(Date.now());
      source.state = true;
      await until(async () => (await pgRows()).length === 3, 20_000, 'the corrected readings in PostgreSQL');
      await until(() => storeStatus().lagRecords === 0, 20_000, 'the store caught up');

      // Now 3 hours ahead (a bad RTC), readings come, and NTP steps it back.
      source.state = false;
      source.set(Date.now() + 3 * HOUR);
      await publish(3);
      await until(() => storeStatus().waitingForClock && storeStatus().lagRecords === 1, 20_000, 'the store held again');
      source.set(Date.now());
      source.state = true;
      await until(async () => (await pgRows()).length === 4, 20_000, 'the last reading in PostgreSQL');
      await until(() => storeStatus().lagRecords === 0, 20_000, 'the store caught up again');
    } finally {
      await mqtt.endAsync();
    }

    const rows = await pgRows();
    expect(rows.map((r) => r.t)).toEqual([0, 1, 2, 3]); // log order, whatever the clock did
    expect(rows.map((r) => r.clock_synced)).toEqual([true, false, false, false]);
    expect(rows[0].clock_correction_ms).toBeNull();
    const corrections = rows.slice(1).map((r) => Number(r.clock_correction_ms));
    for (const c of corrections.slice(0, 2)) expect(Math.abs(c - 2 * HOUR)).toBeLessThan(2000);
    expect(Math.abs(corrections[2] + 3 * HOUR)).toBeLessThan(2000);
    // Corrected times are true times: in order, and within seconds of when the test published them.
    const times = rows.map((r) => r.received_at.getTime());
    expect(times).toEqual([...times].sort((a, b) => a - b));
    for (const t of times) expect(Math.abs(t - Date.now())).toBeLessThan(60_000);

    const stored = await agent.runtime.store!.target.query({ topic: 'env/a', order: 'asc' });
    expect(
      stored.map((r) => [
        (r.payload as { t: number }).t,
        r.clockCorrectionMs === undefined ? null : Math.round(r.clockCorrectionMs / HOUR),
      ]),
    ).toEqual([
      [0, null],
      [1, 2],
      [2, 2],
      [3, -3],
    ]);
    expect(stored.map((r) => r.receivedAt)).toEqual(times);

    // The rollups took the corrected times: every reading in the one or two minutes around now, none hours away.
    await until(() => agent.runtime.rollups!.caughtUp(agent.runtime.log.lastSeq, 100), 20_000, 'rollups caught up');
    const buckets = (await agent.runtime.rollups!.target.query({ topic: 'env/a', width: 60_000 })).filter((b) => b.field === 't');
    expect(buckets.length).toBeGreaterThan(0);
    for (const b of buckets) expect(Math.abs(b.start - Date.now())).toBeLessThan(5 * 60_000);
    expect(buckets.reduce((n, b) => n + b.count, 0)).toBe(4);

    // With the clock trusted again, retention by age works (the control for the zero above).
    expect((await agent.runtime.retention.runOnce(Date.now() + 365 * DAY)).storeDeleted).toBe(4);
  });
});
