// Chaos: a sink removed from the config and added again, at random, across restarts (some of them
// SIGKILLs) while readings flow, beside a sink that stays. The one that stays has each acknowledged
// reading once; the one that comes and goes has, in its last life, every reading from where it
// started, and counts the readings before that (which the log no longer held) as dropped for it.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { askAgent, controlSocketPath } from '../../agent/control/socket.js';
import type { SinkStatus } from '../../agent/consume/sinks/index.js';
import { cleanup, portOf, spawnAgent, tempDir, writeConfig, type ChildAgent } from '../helpers/agent.js';
import { createDatabase, PG_PASSWORD, startInfluxd, until, type TestDatabase } from '../helpers/servers.js';
import { TrackingPublisher } from '../helpers/tracking-publisher.js';
import { chaos, difference, influxKeys, pgKeys, record, SAME, scale, storedKeys } from './chaos.js';

const LIVES = scale(5, 24);

describe('chaos: a sink removed and added again while readings flow', () => {
  const dir = tempDir();
  let db: TestDatabase;
  let influx: Awaited<ReturnType<typeof startInfluxd>>;
  let config: string;
  let sinks: { pg: object; influx: object };
  let agent: ChildAgent | undefined;
  beforeAll(async () => {
    db = await createDatabase();
    influx = await startInfluxd();
    await influx.createDatabase('chaos');
    const batch = { maxRecords: 200, maxAgeMs: 20 };
    sinks = {
      pg: { name: 'pg', type: 'postgres', url: db.url, password: PG_PASSWORD, batch },
      influx: { name: 'influx', type: 'influx', url: influx.url, database: 'chaos', batch },
    };
    config = writeConfig(dir, { sinks: [sinks.pg, sinks.influx] });
  });
  afterAll(async () => {
    agent?.proc.kill('SIGKILL');
    await db.drop();
    await influx.stop();
    cleanup(dir);
  });

  /** The config with the InfluxDB sink in it or not. */
  const withInflux = (present: boolean) => {
    const doc = parse(readFileSync(config, 'utf8')) as Record<string, unknown>;
    doc.sinks = present ? [sinks.pg, sinks.influx] : [sinks.pg];
    writeFileSync(config, stringify(doc));
  };
  const consumers = async () =>
    (await askAgent(controlSocketPath(join(dir, 'data')), '/sync/status')) as { store: { lagRecords: number }; sinks: SinkStatus[] };
  const status = async () => (await consumers()).sinks;

  it(
    `each reading reaches the sink that stays once, and the one that comes and goes from where it started, over ${LIVES} lives`,
    async () => {
      const r = chaos('sinks');
      const started = performance.now();
      const acked = new Set<string>();
      const did = { lives: LIVES, 'with InfluxDB': 0, 'without InfluxDB': 0, SIGKILLs: 0, SIGTERMs: 0 };
      for (let life = 0; life < LIVES; life++) {
        const present = life === LIVES - 1 || r.next() < 0.5;
        withInflux(present);
        did[present ? 'with InfluxDB' : 'without InfluxDB']++;
        agent = await spawnAgent(['--config', config]);
        const publisher = new TrackingPublisher(`life${life}`, 'load/x', 20);
        publisher.start(portOf(agent.listeners.mqtt));
        await new Promise((res) => setTimeout(res, r.int(300, 1500)));
        if (life === LIVES - 1) {
          publisher.stop();
          for (const k of publisher.acked) acked.add(k);
          break;
        }
        const signal = r.pick(['SIGKILL', 'SIGTERM'] as const);
        did[signal === 'SIGKILL' ? 'SIGKILLs' : 'SIGTERMs']++;
        agent.proc.kill(signal);
        await agent.exited;
        publisher.stop();
        for (const k of publisher.acked) acked.add(k);
      }
      const last = agent!;
      await until(
        async () => {
          const c = await consumers();
          return c.store.lagRecords === 0 && c.sinks.every((s) => s.lagRecords === 0);
        },
        120_000,
        'the store and both sinks caught up',
      );
      const influxStatus = (await status()).find((s) => s.name === 'influx')!;
      last.proc.kill('SIGTERM');
      await last.exited;

      const rows = storedKeys(join(dir, 'data', 'store.db'));
      const pg = await pgKeys(db);
      const [inPg, inInflux] = [new Set(pg), new Set(await influxKeys(influx, 'chaos'))];
      const from = influxStatus.start!.seq;
      const droppedForInflux = Object.values(influxStatus.dropped).reduce((a, b) => a + b, 0);
      const stored = new Set(rows.map((x) => x.key));
      const found = {
        acknowledged: acked.size,
        stored: rows.length,
        'acknowledged, not in PostgreSQL': [...acked].filter((k) => !inPg.has(k)).length,
        'twice in PostgreSQL': pg.length - inPg.size,
        "InfluxDB's last life started after seq": from,
        'counted as dropped for it': droppedForInflux,
        'stored after its start, not in InfluxDB': rows.filter((x) => x.seq > from && !inInflux.has(x.key)).length,
      };
      expect(
        [...acked].filter((k) => !stored.has(k)),
        `acknowledged, not stored ${r.replay}`,
      ).toEqual([]);
      expect(found['acknowledged, not in PostgreSQL'], r.replay).toBe(0);
      expect(found['twice in PostgreSQL'], r.replay).toBe(0);
      expect(difference(pg, stored), `PostgreSQL holds what the store holds ${r.replay}`).toEqual(SAME);
      expect(found['stored after its start, not in InfluxDB'], r.replay).toBe(0);
      // Nothing was given up under pressure here: what went before it started is exactly what the log no longer held.
      expect(droppedForInflux, `dropped for InfluxDB against where it started ${r.replay}`).toBe(from);
      expect(acked.size).toBeGreaterThan(LIVES * 20); // the control: readings flowed in every life
      record({
        scenario: 'sinks',
        title:
          'a sink (InfluxDB) removed from the config and added again at random across restarts (SIGKILL or SIGTERM) while readings flow, beside one that stays (PostgreSQL)',
        seed: r.seed,
        full: LIVES > 5,
        seconds: Math.round((performance.now() - started) / 1000),
        did,
        found,
      });
    },
    scale(240_000, 1_200_000),
  );
});
