// A sink that takes rollups instead of raw readings (a metered link): closed buckets reach a real
// PostgreSQL once each, with the figures the readings make; sent again (a crash before the cursor
// moved), they are not stored twice.
import { join } from 'node:path';
import Database from 'better-sqlite3-multiple-ciphers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, PG_PASSWORD, until, type TestDatabase } from '../../scripts/servers.js';
import { cleanup, startAgent, tempDir, type InProcessAgent } from '../helpers/agent.js';
import { connect } from '../helpers/mqtt.js';

const SECOND = 1000;

describe('a sink that takes rollups (PostgreSQL)', () => {
  let db: TestDatabase;
  const dir = tempDir();
  beforeAll(async () => {
    db = await createDatabase();
  });
  afterAll(async () => {
    await db.drop();
    cleanup(dir);
  });

  const config = () => ({
    rollups: { buckets: ['1s', '1m'], closeAfterMs: 300, gatherMs: 20, series: [{ topics: ['env/#'], tags: ['room'] }] },
    store: { gatherMs: 20 },
    sinks: [
      {
        name: 'metered',
        type: 'postgres',
        url: db.url,
        password: PG_PASSWORD,
        table: 'rollups_a',
        rollups: ['1s'],
        batch: { maxAgeMs: 20 },
      },
      { name: 'raw', type: 'postgres', url: db.url, password: PG_PASSWORD, table: 'raw_a', batch: { maxAgeMs: 20 } },
    ],
  });

  /** What the rollup rows must say: the stored readings grouped by topic, room and 1 s bucket. */
  async function expected(agent: InProcessAgent) {
    // A PUBACK means on the log, not yet in the store: wait for all of them there first.
    expect(await agent.runtime.store!.caughtUp(agent.runtime.log.lastSeq, 20_000)).toBe(true);
    const stored = await agent.runtime.store!.target.query({ topic: 'env/#', limit: 10_000 });
    expect(stored).toHaveLength(60);
    const groups = new Map<string, number[]>();
    for (const r of stored) {
      const p = r.payload as { room: string; t: number };
      const key = `${r.topic}|${p.room}|${Math.floor(r.receivedAt / SECOND) * SECOND}`;
      groups.set(key, [...(groups.get(key) ?? []), p.t]);
    }
    return groups;
  }

  const rows = () =>
    db.query('SELECT agent_id, seq, topic, schema_id, extract(epoch from ts) * 1000 AS ts, payload FROM rollups_a ORDER BY seq') as Promise<
      { agent_id: string; seq: string; topic: string; schema_id: string; ts: string; payload: Record<string, number | string> }[]
    >;

  it('gets each closed bucket once, with count, min, max, sum, mean, stddev and last; the raw sink gets the readings', async () => {
    let agent = await startAgent(config(), dir);
    try {
      const client = await connect(agent.mqttUrl, { clientId: 'rooms' });
      for (let i = 0; i < 60; i++) {
        await client.publishAsync(`env/${i % 2 ? 'a' : 'b'}`, JSON.stringify({ room: i % 3 ? 'kitchen' : 'hall', t: 20 + (i % 7) }), {
          qos: 1,
        });
        await new Promise((r) => setTimeout(r, 25));
      }
      await client.endAsync();
      const want = await expected(agent);
      // Every bucket closes once it ended 300 ms ago: all are in PostgreSQL soon after the last reading.
      const got = await until(
        async () => {
          const r = await rows();
          return r.length === want.size && r;
        },
        20_000,
        `${want.size} rollup rows`,
      );
      for (const row of got) {
        const p = row.payload;
        expect(row.agent_id).toMatch(/\/rollups$/); // rollups never collide with raw readings of the same agent
        expect(row.schema_id).toBe('rollup/1s');
        expect(Number(row.ts)).toBe(p.start);
        const values = want.get(`${row.topic}|${p.room}|${p.start}`)!;
        expect(values, `bucket ${row.topic} ${p.room} ${p.start}`).toBeDefined();
        const mean = values.reduce((a, b) => a + b, 0) / values.length;
        expect([p['t.count'], p['t.min'], p['t.max'], p['t.sum'], p['t.last']]).toEqual([
          values.length,
          Math.min(...values),
          Math.max(...values),
          values.reduce((a, b) => a + b, 0),
          values.at(-1),
        ]);
        expect(p['t.mean']).toBeCloseTo(mean, 9);
        if (values.length > 1)
          expect(p['t.stddev']).toBeCloseTo(Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (values.length - 1)), 9);
        expect(p.bucket).toBe('1s');
      }
      // Only the widths it takes: no 1m bucket reached it. Positive control: the 1m rollups exist locally.
      expect(got.every((r) => r.payload.bucket === '1s')).toBe(true);
      expect((await agent.runtime.rollups!.target.query({ width: 60_000 })).length).toBeGreaterThan(0);
      // The raw sink beside it got every reading.
      await until(async () => Number((await db.query('SELECT count(*) AS n FROM raw_a'))[0].n) === 60 || undefined, 20_000, 'raw rows');

      // Sent again from the start, as after a crash between PostgreSQL's commit and the cursor's: the
      // cursor back at 0 and every closed bucket still waiting for it. Nothing is stored twice.
      await agent.stop();
      const rdb = new Database(join(dir, 'data', 'rollups.db'));
      expect(rdb.prepare("SELECT revision FROM cursors WHERE name = 'sink:metered'").get()).toEqual({
        revision: Math.max(...got.map((r) => Number(r.seq))),
      });
      expect(rdb.prepare('SELECT count(*) AS n FROM emitted WHERE width = 1000').get()).toEqual({ n: 0 }); // sent buckets are forgotten
      const reopen = rdb.prepare('INSERT INTO emitted SELECT ?, 1000, id, ? FROM series WHERE topic = ? AND tags = ?');
      for (const r of got) reopen.run(Number(r.seq), r.payload.start, r.topic, JSON.stringify({ room: r.payload.room }));
      expect(rdb.prepare('SELECT count(*) AS n FROM emitted WHERE width = 1000').get()).toEqual({ n: got.length });
      rdb.prepare("UPDATE cursors SET revision = 0 WHERE name = 'sink:metered'").run();
      rdb.close();
      agent = await startAgent(config(), dir);
      await until(
        async () => ((await agent.runtime.sync.status()).find((s) => s.name === 'metered')!.lagRecords === 0 ? true : undefined),
        20_000,
        'resend done',
      );
      const after = await rows();
      expect(after.map((r) => r.seq)).toEqual(got.map((r) => r.seq));
      expect((await agent.runtime.sync.status()).find((s) => s.name === 'metered')!.sent.records).toBe(got.length); // it did send them all again
    } finally {
      await agent.stop();
    }
  }, 90_000);
});
