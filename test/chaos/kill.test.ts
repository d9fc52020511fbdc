// Chaos: SIGKILL at random instants under mixed QoS 0/1 load, with two sinks (PostgreSQL and
// InfluxDB) and the rollups. Afterwards: no acknowledged reading missing from the store or either
// sink, no reading twice in PostgreSQL, the sinks hold exactly what the store holds, and the rollups
// count each stored reading once.
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { askAgent, controlSocketPath } from '../../agent/control/socket.js';
import { cleanup, portOf, spawnAgent, tempDir, writeConfig, type ChildAgent } from '../helpers/agent.js';
import { createDatabase, PG_PASSWORD, startInfluxd, until, type TestDatabase } from '../helpers/servers.js';
import { TrackingPublisher } from '../helpers/tracking-publisher.js';
import { chaos, difference, influxKeys, pgKeys, record, SAME, scale, storedKeys } from './chaos.js';

const KILLS = scale(4, 50);
const QOS1_PUBLISHERS = 2;

interface Status {
  store: { lagRecords: number };
  rollups: { lagRecords: number };
  sinks: { name: string; lagRecords: number }[];
}

/** A QoS 0 sensor: a reading every 2 ms, none acknowledged. */
function qos0Sensor(port: number, name: string): { stop(): void; sent: () => number } {
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId: name, reconnectPeriod: 0 });
  client.on('error', () => {});
  let n = 0;
  const timer = setInterval(
    () => client.connected && client.publish('load/q0', JSON.stringify({ key: `${name}:${n++}`, v: n }), { qos: 0 }),
    2,
  );
  return {
    stop: () => (clearInterval(timer), client.end(true)),
    sent: () => n,
  };
}

describe('chaos: SIGKILL under mixed load with two sinks and rollups', () => {
  const dir = tempDir();
  let db: TestDatabase;
  let influx: Awaited<ReturnType<typeof startInfluxd>>;
  let config: string;
  let agent: ChildAgent | undefined;
  beforeAll(async () => {
    db = await createDatabase();
    influx = await startInfluxd();
    await influx.createDatabase('chaos');
    const batch = { maxRecords: 200, maxAgeMs: 20 };
    config = writeConfig(dir, {
      sinks: [
        { name: 'pg', type: 'postgres', url: db.url, password: PG_PASSWORD, batch },
        { name: 'influx', type: 'influx', url: influx.url, database: 'chaos', batch },
      ],
    });
  });
  afterAll(async () => {
    agent?.proc.kill('SIGKILL');
    await db.drop();
    await influx.stop();
    cleanup(dir);
  });

  const status = async () => (await askAgent(controlSocketPath(join(dir, 'data')), '/sync/status')) as Status;

  it(
    `loses no acknowledged reading and duplicates none across ${KILLS} kills`,
    async () => {
      const random = chaos('kill');
      const started = performance.now();
      const acked = new Set<string>();
      let killedWithBacklog = 0;
      let qos0Sent = 0;
      for (let kill = 0; kill < KILLS; kill++) {
        agent = await spawnAgent(['--config', config]);
        const port = portOf(agent.listeners.mqtt);
        const publishers = Array.from({ length: QOS1_PUBLISHERS }, (_, p) => new TrackingPublisher(`k${kill}p${p}`, `load/p${p}`, 20));
        publishers.forEach((p) => p.start(port));
        const q0 = qos0Sensor(port, `k${kill}q0`);
        await new Promise((r) => setTimeout(r, random.int(200, 1500)));
        const s = await status().catch(() => undefined);
        if (s && s.sinks.some((k) => k.lagRecords > 0)) killedWithBacklog++;
        agent.proc.kill('SIGKILL');
        await agent.exited;
        publishers.forEach((p) => p.stop());
        q0.stop();
        qos0Sent += q0.sent();
        for (const p of publishers) for (const k of p.acked) acked.add(k);
      }
      agent = await spawnAgent(['--config', config]);
      await until(
        async () => {
          const s = await status();
          return s.store.lagRecords === 0 && s.rollups.lagRecords === 0 && s.sinks.every((k) => k.lagRecords === 0);
        },
        120_000,
        'the store, the rollups and both sinks caught up',
      );
      const admin = `admin:${readFileSync(join(dir, 'data', 'initial-admin-password'), 'utf8').trim()}`;
      const aggregate = (await (
        await fetch(`http://${agent.listeners.http}/api/data/aggregate?topic=load%2F%23&bucket=1d&fields=v&stats=count`, {
          headers: { authorization: `Basic ${Buffer.from(admin).toString('base64')}` },
        })
      ).json()) as { source: string; series: { points: { count: number }[] }[] };
      agent.proc.kill('SIGTERM');
      await agent.exited;

      const storeKeys = storedKeys(join(dir, 'data', 'store.db')).map((r) => r.key);
      const pg = await pgKeys(db);
      const inInflux = await influxKeys(influx, 'chaos');

      const stored = new Set(storeKeys);
      const rolledUp = aggregate.series.flatMap((s) => s.points).reduce((n, p) => n + p.count, 0);
      const found = {
        acknowledged: acked.size,
        stored: storeKeys.length,
        'QoS 0 readings sent': qos0Sent,
        'acknowledged, not stored': [...acked].filter((k) => !stored.has(k)).length,
        'in PostgreSQL': pg.length,
        'twice in PostgreSQL': pg.length - new Set(pg).size,
        'in InfluxDB': inInflux.length,
        'rolled up': rolledUp,
      };
      const { replay } = random;
      expect(new Set(storeKeys).size, `a reading stored twice ${replay}`).toBe(storeKeys.length);
      expect(found['acknowledged, not stored'], `acknowledged readings missing ${replay}`).toBe(0);
      expect(found['twice in PostgreSQL'], `a reading twice in PostgreSQL ${replay}`).toBe(0);
      expect(difference(pg, stored), `PostgreSQL holds what the store holds ${replay}`).toEqual(SAME);
      expect(difference(inInflux, stored), `InfluxDB holds what the store holds ${replay}`).toEqual(SAME);
      expect(aggregate.source).toBe('rollups');
      expect(rolledUp, `the rollups count each stored reading once ${replay}`).toBe(storeKeys.length);
      // The controls: the load was real, and kills came while the sinks had readings to send.
      expect(acked.size).toBeGreaterThan(KILLS * 50);
      expect(storeKeys.length).toBeGreaterThan(acked.size);
      expect(killedWithBacklog, `kills with readings still to send ${replay}`).toBeGreaterThan(0);
      record({
        scenario: 'kill',
        title: `SIGKILL at random instants under mixed QoS 0/1 load, two sinks (PostgreSQL, InfluxDB) and rollups`,
        seed: random.seed,
        full: KILLS === 50,
        seconds: Math.round((performance.now() - started) / 1000),
        did: {
          kills: KILLS,
          'kills with readings still to send': killedWithBacklog,
          'QoS 1 publishers': QOS1_PUBLISHERS,
          'QoS 0 sensors': 1,
        },
        found,
      });
    },
    scale(240_000, 1_800_000),
  );
});
