// The contract every sink keeps, run against each one's real server: refused credentials make it
// `down` (the reason shown, no retry storm, the reading kept until the right ones deliver it), and a
// batch sent again (a confirmation lost) leaves each (agent, seq) once where the server can keep it
// once, and carries the same (agent, seq) where it cannot (a broker passes messages on).
// Each sink's own folder tests what is its own (types, partial writes, TLS, link cuts).
import { Value } from '@sinclair/typebox/value';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InfluxConfigSchema } from '../../agent/consume/sinks/influx/config.js';
import { MqttConfigSchema } from '../../agent/consume/sinks/mqtt/config.js';
import { PostgresConfigSchema } from '../../agent/consume/sinks/postgres/config.js';
import { OutBatch } from '../../agent/consume/sinks/record.js';
import { createSink } from '../../agent/consume/sinks/registry.js';
import type { SinkConfig } from '../../agent/consume/sinks/config.js';
import { encodeRecord } from '../../agent/log/format.js';
import { cleanup, startAgent } from '../helpers/agent.js';
import { quiet } from '../helpers/logger.js';
import { connect } from '../helpers/mqtt.js';
import { createDatabase, freePort, PG_PASSWORD, startInfluxd, startMosquitto, until } from '../helpers/servers.js';
import { statusOf, untilStatus } from '../helpers/sync.js';

interface Upstream {
  /** The sink's config entry (name, type and its own keys) with the right or wrong credentials. */
  sink(credentials: 'right' | 'wrong'): Record<string, unknown>;
  /** The same sink type at an address nothing listens on: an error of the moment, retried quickly. */
  unreachable(port: number): Record<string, unknown>;
  /** What the sink says when its credentials are refused. */
  refused: RegExp;
  /** Readings the server holds (or passed on): in all, and distinct (agent, seq). */
  held(): Promise<{ total: number; distinct: number }>;
  /** Whether the server keeps one copy of a reading sent twice (a database) or passes it on again (a broker). */
  keepsOne: boolean;
  tearDown(): Promise<void>;
}

interface Harness {
  type: SinkConfig['type'];
  setUp(): Promise<Upstream>;
}

const RETRY_FAST = { batch: { maxAgeMs: 10 }, retry: { initialMs: 10, maxMs: 50 } };

const postgres: Harness = {
  type: 'postgres',
  async setUp() {
    const db = await createDatabase();
    return {
      sink: (c) => ({ type: 'postgres', url: db.url, password: c === 'right' ? PG_PASSWORD : 'wrong', table: 'contract' }),
      unreachable: (port) => ({ type: 'postgres', url: `postgres://edge_test@127.0.0.1:${port}/x`, password: PG_PASSWORD }),
      refused: /^postgres: password authentication failed for user "edge_test"/,
      held: async () => {
        const [row] = await db
          .query<{ total: string; distinct: string }>('SELECT count(*) AS total, count(DISTINCT (agent_id, seq)) AS distinct FROM contract')
          .catch(() => [{ total: '0', distinct: '0' }]);
        return { total: Number(row.total), distinct: Number(row.distinct) };
      },
      keepsOne: true,
      tearDown: () => db.drop(),
    };
  },
};

const influx: Harness = {
  type: 'influx',
  async setUp() {
    const server = await startInfluxd({ auth: true });
    await server.createDatabase('contract');
    const count = async () => {
      const body = (await server.query('SELECT count(v) FROM "contract".."mqtt"')) as { results: { series?: { values: number[][] }[] }[] };
      return body.results[0].series?.[0].values[0][1] ?? 0;
    };
    return {
      sink: (c) => ({
        type: 'influx',
        url: server.url,
        database: 'contract',
        username: 'admin',
        password: c === 'right' ? 'admin-pw' : 'nope',
      }),
      unreachable: (port) => ({ type: 'influx', url: `http://127.0.0.1:${port}`, database: 'contract' }),
      refused: /^influx: HTTP 401: authorization failed/,
      // A point is its series and time: the one written again overwrites itself.
      held: async () => ({ total: await count(), distinct: await count() }),
      keepsOne: true,
      tearDown: () => server.stop(),
    };
  },
};

const mqtt: Harness = {
  type: 'mqtt',
  async setUp() {
    const server = await startMosquitto({ users: { bridge: 'bridge-pw', reader: 'reader-pw' } });
    const reader: MqttClient = await connect(server.url.replace('mqtt://', 'mqtt://reader:reader-pw@'));
    const seqs: string[] = [];
    reader.on('message', (_topic, payload) => {
      const record = JSON.parse(String(payload)) as { agent: string; seq: number };
      seqs.push(`${record.agent}/${record.seq}`);
    });
    await reader.subscribeAsync('contract/#', { qos: 1 });
    return {
      sink: (c) => ({
        type: 'mqtt',
        url: server.url,
        username: 'bridge',
        password: c === 'right' ? 'bridge-pw' : 'nope',
        topic: 'contract/{agent}/{topic}',
      }),
      unreachable: (port) => ({ type: 'mqtt', url: `mqtt://127.0.0.1:${port}`, topic: 'contract/{agent}/{topic}' }),
      refused: /^mqtt: Connection refused: (Not authorized|Bad username or password)/,
      held: async () => ({ total: seqs.length, distinct: new Set(seqs).size }),
      keepsOne: false,
      tearDown: async () => {
        await reader.endAsync();
        await server.stop();
      },
    };
  },
};

const DEFAULTS = { postgres: PostgresConfigSchema, influx: InfluxConfigSchema, mqtt: MqttConfigSchema };

describe.each([postgres, influx, mqtt])('the sink contract: $type', (harness) => {
  let up: Upstream;
  beforeAll(async () => {
    up = await harness.setUp();
  }, 60_000);
  afterAll(async () => {
    await up?.tearDown();
  });

  it('refused credentials: down with the reason and one attempt, while an unreachable sink retries; the right ones deliver the kept reading', async () => {
    const closed = await freePort();
    const agent = await startAgent({
      sinks: [
        { name: 'refused', ...up.sink('wrong'), ...RETRY_FAST },
        { name: 'unreachable', ...up.unreachable(closed), ...RETRY_FAST },
      ],
    });
    const client = await connect(agent.mqttUrl, { clientId: 'contract-pi' });
    await client.publishAsync('c/one', JSON.stringify({ v: 1 }), { qos: 1 });
    await client.endAsync();
    const down = await untilStatus(agent, 'refused', (s) => s.state === 'down');
    expect(down.lastError?.message).toMatch(up.refused);
    // The control: with the same fast retries, the unreachable sink tries again and again meanwhile.
    await untilStatus(agent, 'unreachable', (s) => s.failures >= 20);
    expect(await statusOf(agent, 'refused')).toMatchObject({ state: 'down', failures: 1, lagRecords: 1 });
    await agent.stop();

    // The same data directory with the right credentials: the reading kept in the log arrives.
    const fixed = await startAgent({ sinks: [{ name: 'refused', ...up.sink('right'), ...RETRY_FAST }] }, agent.dir);
    await untilStatus(fixed, 'refused', (s) => s.lagRecords === 0 && s.sent.records === 1);
    await until(async () => (await up.held()).distinct === 1, 20_000, 'the reading upstream');
    await fixed.stop();
    cleanup(agent.dir);
  }, 90_000);

  it('a batch sent again, and one overlapping it: each (agent, seq) once where the server keeps one, the same (agent, seq) where it passes them on', async () => {
    const before = await up.held();
    const config = Value.Default(DEFAULTS[harness.type], { name: 'resend', ...up.sink('right') }) as SinkConfig;
    const sink = await createSink(config, { agentId: 'pi-resend', schemas: { byId: () => undefined, list: () => [] }, logger: quiet });
    const batch = (from: number, to: number) =>
      OutBatch.of(
        Array.from({ length: to - from + 1 }, (_, i) =>
          encodeRecord(from + i, {
            topic: 'c/resend',
            receivedAt: 1_764_496_800_000 + from + i,
            clockSynced: true,
            payloadJson: JSON.stringify({ v: from + i }),
            clientId: 'c',
            qos: 1,
          }),
        ),
        'pi-resend',
      );
    const write = async (from: number, to: number) =>
      sink.write((await sink.encode(batch(from, to))).encoded, new AbortController().signal);
    try {
      await sink.start();
      await write(1, 50);
      await write(1, 50); // its confirmation was lost: the same batch again
      await write(26, 75); // half old, half new
      const expected = { distinct: before.distinct + 75, total: before.total + (up.keepsOne ? 75 : 150) };
      await until(
        async () => {
          const now = await up.held();
          return now.distinct === expected.distinct && now.total === expected.total;
        },
        20_000,
        `${expected.distinct} distinct readings upstream`,
      );
    } finally {
      await sink.close();
    }
  }, 60_000);
});
