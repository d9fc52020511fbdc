// Chaos: the wall clock stepped at random while readings flow: synchronisation lost and the clock
// jumped hours or days either way, jumped again while unsynchronised, synchronised back, and slewed
// by under a second while synchronised. The agent is given a clock source a test can step (the
// interface the system clock implements): stepping this machine's own clock would disturb every
// other process on it. Afterwards each acknowledged reading is in the store and PostgreSQL once,
// with its true time (within the slew and the PUBACK's delay), and the rollups count each once near now.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, startAgent, tempDir, type InProcessAgent } from '../helpers/agent.js';
import { TestClock } from '../helpers/clock.js';
import { createDatabase, PG_PASSWORD, until, type TestDatabase } from '../helpers/servers.js';
import { TrackingPublisher } from '../helpers/tracking-publisher.js';
import { chaos, difference, record, SAME, scale } from './chaos.js';

const STEPS = scale(8, 60);
const DAY = 86_400_000;
const SLEW_MS = 800;
/** A reading's true time is before its PUBACK, by at most the commit window and the slew. */
const TOLERANCE_MS = 3000;

describe('chaos: the clock stepped while readings flow', () => {
  let db: TestDatabase;
  let agent: InProcessAgent;
  const source = new TestClock('boot-a', Date.now());
  source.state = true;
  beforeAll(async () => {
    db = await createDatabase();
    agent = await startAgent(
      {
        health: { clock: { holdSec: 3600 } },
        store: { gatherMs: 20 },
        rollups: { enabled: true, buckets: ['1m'], gatherMs: 20 },
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

  it(
    `each acknowledged reading once, at its true time, after ${STEPS} steps of the clock`,
    async () => {
      const r = chaos('clock');
      const started = performance.now();
      const publishers = [new TrackingPublisher('c1', 'env/c1', 5), new TrackingPublisher('c2', 'env/c2', 5)];
      publishers.forEach((p) => p.start(agent.port('mqtt')));
      const did: Record<string, number> = {
        'synchronisation lost, clock jumped': 0,
        'jumped again unsynchronised': 0,
        synchronised: 0,
        'slewed while synchronised': 0,
      };
      const wrong = () => (r.next() < 0.5 ? -1 : 1) * r.int(60_000, 3 * DAY);
      for (let step = 0; step < STEPS; step++) {
        await new Promise((res) => setTimeout(res, r.int(100, 1500)));
        if (source.state) {
          // The first step always loses synchronisation: the control that unsynchronised readings happened.
          if (step === 0 || r.next() < 0.5) {
            source.state = false;
            source.set(Date.now() + wrong());
            did['synchronisation lost, clock jumped']++;
          } else {
            source.set(Date.now() + r.int(-SLEW_MS, SLEW_MS));
            did['slewed while synchronised']++;
          }
        } else if (r.next() < 0.3) {
          source.set(Date.now() + wrong());
          did['jumped again unsynchronised']++;
        } else {
          source.set(Date.now());
          source.state = true;
          did.synchronised++;
        }
      }
      await new Promise((res) => setTimeout(res, 300));
      if (!source.state) {
        source.set(Date.now());
        source.state = true;
        did.synchronised++;
      }
      publishers.forEach((p) => p.stop());
      // The last readings are in the log before the sink's drain is waited for: QoS 0 ones still on
      // their way, or waiting for their commit, would otherwise reach the store after the sink said
      // it had nothing left (a busy machine showed it).
      let lastSeq = -1;
      await until(
        () => {
          const now = agent.runtime.log.lastSeq;
          const quiet = now === lastSeq;
          lastSeq = now;
          return quiet || undefined;
        },
        10_000,
        'the log quiet',
      );
      await until(async () => (await agent.runtime.sync.status())[0].lagRecords === 0 || undefined, 60_000, 'the sink drained');
      expect(await agent.runtime.store!.caughtUp(lastSeq, 30_000)).toBe(true);
      expect(await agent.runtime.rollups!.caughtUp(lastSeq, 30_000)).toBe(true);

      const rows = await db.query<{ key: string; received_at: Date; clock_synced: boolean; clock_correction_ms: string | null }>(
        "SELECT payload->>'key' AS key, received_at, clock_synced, clock_correction_ms FROM clocked ORDER BY seq",
      );
      const stored = await agent.runtime.store!.target.query({ topic: 'env/#', limit: 1_000_000, order: 'asc' });
      const inPg = new Map(rows.map((row) => [row.key, row]));
      const storedAt = new Map(stored.map((x) => [(x.payload as { key: string }).key, x.receivedAt]));
      const ackedAt = new Map(publishers.flatMap((p) => [...p.ackedAt]));
      const off = [...ackedAt].filter(([key, at]) => {
        const t = inPg.get(key)?.received_at.getTime();
        return t === undefined || t > at + SLEW_MS || t < at - TOLERANCE_MS || storedAt.get(key) !== t;
      });
      const unsynced = rows.filter((row) => !row.clock_synced);
      const buckets = (await agent.runtime.rollups!.target.query({ topic: 'env/#', width: 60_000, fields: ['v'] })).filter(
        (b) => b.field === 'v',
      );
      const found = {
        acknowledged: ackedAt.size,
        stored: stored.length,
        'in PostgreSQL': rows.length,
        'twice in PostgreSQL': rows.length - inPg.size,
        'received unsynchronised, corrected': unsynced.filter((row) => row.clock_correction_ms !== null).length,
        'received unsynchronised, not corrected': unsynced.filter((row) => row.clock_correction_ms === null).length,
        'acknowledged, missing or not at their true time': off.length,
        'rolled up': buckets.reduce((n, b) => n + b.count, 0),
        'rollup buckets more than 5 min from now': buckets.filter((b) => Math.abs(b.start - Date.now()) > 5 * 60_000).length,
      };
      const { replay } = r;
      expect(found['twice in PostgreSQL'], `a reading twice in PostgreSQL ${replay}`).toBe(0);
      expect(difference(inPg.keys(), storedAt.keys()), `PostgreSQL holds what the store holds ${replay}`).toEqual(SAME);
      expect(off.slice(0, 3), `acknowledged readings missing or at a wrong time ${replay}`).toEqual([]);
      expect(found['received unsynchronised, not corrected'], `uncorrected times ${replay}`).toBe(0);
      expect(found['rolled up'], `the rollups count each reading once ${replay}`).toBe(stored.length);
      expect(found['rollup buckets more than 5 min from now'], `rollups at a wrong time ${replay}`).toBe(0);
      // The controls: readings flowed throughout, some of them while the clock was wrong.
      expect(ackedAt.size).toBeGreaterThan(STEPS * 5);
      expect(found['received unsynchronised, corrected']).toBeGreaterThan(0);
      record({
        scenario: 'clock',
        title: 'the wall clock stepped at random (synchronisation lost, jumps of a minute to 3 days either way, slews) while readings flow',
        seed: r.seed,
        full: STEPS > 8,
        seconds: Math.round((performance.now() - started) / 1000),
        did,
        found,
      });
    },
    scale(120_000, 900_000),
  );
});
