// Chaos: sink outages of random kinds and lengths while readings flow: the server's link cut, stalled
// (nothing passes, nothing closes), or slowed with latency and resets, through loopback proxies in
// front of PostgreSQL and InfluxDB. Afterwards each acknowledged reading is in each sink once, and
// nothing was dead-lettered (an outage is a failure of the moment, never a reading's fault).
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, startAgent, type InProcessAgent } from '../helpers/agent.js';
import { createDatabase, PG_PASSWORD, startInfluxd, TcpProxy, until, type TestDatabase } from '../helpers/servers.js';
import { TrackingPublisher } from '../helpers/tracking-publisher.js';
import { chaos, difference, influxKeys, pgKeys, record, SAME, scale, storedKeys } from './chaos.js';

const OUTAGES = scale(6, 40);
const LONGEST_MS = scale(4000, 30_000);

describe('chaos: sink outages of random kind and length', () => {
  let db: TestDatabase;
  let influx: Awaited<ReturnType<typeof startInfluxd>>;
  let agent: InProcessAgent;
  const proxies: Record<'pg' | 'influx', TcpProxy> = {} as Record<'pg' | 'influx', TcpProxy>;
  const r = chaos('outage');
  beforeAll(async () => {
    db = await createDatabase();
    influx = await startInfluxd();
    await influx.createDatabase('chaos');
    proxies.pg = await new TcpProxy(db.port, r.next).listen();
    proxies.influx = await new TcpProxy(influx.port, r.next).listen();
    const fast = { batch: { maxRecords: 200, maxAgeMs: 20 }, retry: { initialMs: 50, maxMs: 1000 } };
    agent = await startAgent({
      sinks: [
        {
          name: 'pg',
          type: 'postgres',
          url: `postgres://edge_test@127.0.0.1:${proxies.pg.port}/${db.name}`,
          password: PG_PASSWORD,
          timeoutMs: 2000,
          ...fast,
        },
        { name: 'influx', type: 'influx', url: `http://127.0.0.1:${proxies.influx.port}`, database: 'chaos', timeoutMs: 2000, ...fast },
      ],
    });
  });
  afterAll(async () => {
    await agent.stop();
    cleanup(agent.dir);
    await Promise.all([proxies.pg.close(), proxies.influx.close()]);
    await db.drop();
    await influx.stop();
  });

  const sinkFailures = async (name: string): Promise<number> => (await agent.runtime.sync.status()).find((s) => s.name === name)!.failures;

  it(
    `every acknowledged reading arrives once after ${OUTAGES} outages`,
    async () => {
      const started = performance.now();
      const publishers = [new TrackingPublisher('o1', 'load/o1', 10), new TrackingPublisher('o2', 'load/o2', 10)];
      publishers.forEach((p) => p.start(agent.port('mqtt')));
      const kinds: Record<string, number> = {};
      for (let i = 0; i < OUTAGES; i++) {
        const sink = r.pick(['pg', 'influx'] as const);
        // The first outage is one a sink must fail on, so that every run meets a failure.
        const kind = r.pick(i === 0 ? (['cut', 'stall'] as const) : (['cut', 'stall', 'slow'] as const));
        const proxy = proxies[sink];
        const failuresBefore = await sinkFailures(sink);
        if (kind === 'cut') proxy.cut();
        else if (kind === 'stall') proxy.stall();
        else proxy.slow(r.int(20, 400), r.next() * 0.05);
        kinds[`${sink} ${kind}`] = (kinds[`${sink} ${kind}`] ?? 0) + 1;
        await new Promise((res) => setTimeout(res, r.int(200, LONGEST_MS)));
        // A cut or a stall lasts until the sink has met it (a stall shorter than the sink's timeout
        // would pass unseen): each is an outage the sink retried through, not just a pause.
        if (kind !== 'slow')
          await until(async () => (await sinkFailures(sink)) > failuresBefore, 30_000, `${sink} met the ${kind} ${r.replay}`);
        proxy.restore();
        await new Promise((res) => setTimeout(res, r.int(100, 1500)));
      }
      publishers.forEach((p) => p.stop());
      const acked = new Set(publishers.flatMap((p) => [...p.acked]));
      const lastSeq = agent.runtime.log.lastSeq;
      await until(async () => (await agent.runtime.sync.status()).every((s) => s.lagRecords === 0), 120_000, 'both sinks drained');
      expect(await agent.runtime.store!.caughtUp(lastSeq)).toBe(true);

      const pg = await pgKeys(db);
      const inInfluxList = await influxKeys(influx, 'chaos');
      // From the file: a full run stores millions, more than a query returns.
      const stored = storedKeys(join(agent.dataDir, 'store.db')).map((x) => x.key);
      const status = await agent.runtime.sync.status();
      const [inPg, inInflux] = [new Set(pg), new Set(inInfluxList)];
      const found = {
        acknowledged: acked.size,
        stored: stored.length,
        'acknowledged, not in PostgreSQL': [...acked].filter((k) => !inPg.has(k)).length,
        'twice in PostgreSQL': pg.length - new Set(pg).size,
        'acknowledged, not in InfluxDB': [...acked].filter((k) => !inInflux.has(k)).length,
        'dead-lettered': agent.runtime.log.stats().deadLetters,
        'sink failures met and retried': status.reduce((n, s) => n + s.failures, 0),
      };
      expect(found['acknowledged, not in PostgreSQL'], `missing in PostgreSQL ${r.replay}`).toBe(0);
      expect(found['twice in PostgreSQL'], `twice in PostgreSQL ${r.replay}`).toBe(0);
      expect(difference(inPg, stored), `PostgreSQL holds what the store holds ${r.replay}`).toEqual(SAME);
      expect(difference(inInflux, stored), `InfluxDB holds what the store holds ${r.replay}`).toEqual(SAME);
      expect(found['dead-lettered'], `readings dead-lettered by an outage ${r.replay}`).toBe(0);
      expect(acked.size).toBeGreaterThan(OUTAGES * 20); // the controls: readings flowed throughout, and the outages were felt
      expect(found['sink failures met and retried']).toBeGreaterThan(0);
      record({
        scenario: 'outage',
        title: 'sink outages of random kind (link cut, stalled, slowed with latency and resets) and length, PostgreSQL and InfluxDB',
        seed: r.seed,
        full: OUTAGES > 6,
        seconds: Math.round((performance.now() - started) / 1000),
        did: { outages: OUTAGES, 'longest possible (ms)': LONGEST_MS, ...kinds },
        found,
      });
    },
    scale(240_000, 1_800_000),
  );
});
