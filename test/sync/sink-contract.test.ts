// The contract every sink keeps, run against each one's real server: refused credentials make it
// `down` (the reason shown, no retry storm, the reading kept until the right ones deliver it); an
// outage of the link holds the readings until it is back, then each arrives once; a reading the
// server refuses goes to dead letters with the server's reason while those around it arrive; and a
// batch sent again (a confirmation lost) leaves each (agent, seq) once where the server can keep it
// once, and carries the same (agent, seq) where it cannot (a broker passes messages on).
// Each sink's own folder tests what is its own (types, partial writes, TLS, link cuts).
import { Value } from '@sinclair/typebox/value';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InfluxConfigSchema } from '../../agent/consume/sinks/influx/config.js';
import { MqttConfigSchema } from '../../agent/consume/sinks/mqtt/config.js';
import { PostgresConfigSchema } from '../../agent/consume/sinks/postgres/config.js';
import { OutBatch } from '../../agent/consume/sinks/record.js';
import { createSink } from '../../agent/consume/sinks/registry.js';
import type { SinkConfig } from '../../agent/consume/sinks/config.js';
import { encodeRecord } from '../../agent/log/format.js';
import { cleanup, startAgent, tempDir } from '../helpers/agent.js';
import { quiet } from '../helpers/logger.js';
import { connect } from '../helpers/mqtt.js';
import { createDatabase, freePort, PG_PASSWORD, startInfluxd, startMosquitto, TcpProxy, until } from '../helpers/servers.js';
import { statusOf, untilStatus } from '../helpers/sync.js';

interface Upstream {
  /** The sink's config entry (name, type and its own keys) with the right or wrong credentials. */
  sink(credentials: 'right' | 'wrong'): Record<string, unknown>;
  /** The same sink type at an address nothing listens on: an error of the moment, retried quickly. */
  unreachable(port: number): Record<string, unknown>;
  /** What the sink says when its credentials are refused. */
  refused: RegExp;
  /** The server's port, for a proxy whose link a test cuts. */
  port: number;
  /** A reading this server refuses by what it is, the reason it gives, and the sink's config for it. */
  poison: { topic: string; payload: string; reason: RegExp; sink?: Record<string, unknown> };
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
      port: db.port,
      // jsonb cannot hold \u0000: valid JSON, refused by PostgreSQL.
      poison: { topic: 'c/poison', payload: '{"v":"a\\u0000b"}', reason: /^postgres: unsupported Unicode escape sequence/ },
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
      port: server.port,
      // `v` is a float field of this measurement: a string for it is a field type conflict.
      poison: { topic: 'c/poison', payload: '{"v":"text"}', reason: /^influx: HTTP 400: partial write: field type conflict/ },
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
    // The bridge may publish under contract/ except to one topic: an upstream ACL.
    const aclDir = tempDir('mosquitto-acl-');
    const acl = join(aclDir, 'acl');
    writeFileSync(acl, 'user bridge\ntopic deny contract/+/c/denied\ntopic write contract/#\n\nuser reader\ntopic read contract/#\n');
    const server = await startMosquitto({ users: { bridge: 'bridge-pw', reader: 'reader-pw' }, extra: [`acl_file ${acl}`] });
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
      port: server.port,
      // MQTT 5 says which publish the ACL refused (PUBACK 135; Mosquitto 2.0.11 then closes the connection, and
      // the PUBACK may be lost with it); 3.1.1 cannot say (Mosquitto acknowledges and drops).
      poison: {
        topic: 'c/denied',
        payload: '{"v":3}',
        reason: /^mqtt: (PUBACK 135: .*Not authorized|the broker closed the connection each of the last \d+ times)/,
        sink: { protocolVersion: 5 },
      },
      held: async () => ({ total: seqs.length, distinct: new Set(seqs).size }),
      keepsOne: false,
      tearDown: async () => {
        await reader.endAsync();
        await server.stop();
        cleanup(aclDir);
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

  it('an outage: readings taken while the link is cut wait in the log, then arrive once each when it is back', async () => {
    const proxy = await new TcpProxy(up.port).listen();
    const right = up.sink('right');
    const via = String(right.url).replace(`:${up.port}`, `:${proxy.port}`);
    const agent = await startAgent({ agent: { id: 'pi-outage' }, sinks: [{ name: 'outage', ...right, url: via, ...RETRY_FAST }] });
    const client = await connect(agent.mqttUrl, { clientId: 'outage-pi' });
    const publish = async (from: number, to: number) => {
      for (let v = from; v <= to; v++) await client.publishAsync('c/outage', JSON.stringify({ v }), { qos: 1 });
    };
    try {
      const before = await up.held();
      await publish(1, 10);
      await until(async () => (await up.held()).distinct === before.distinct + 10, 20_000, 'the first ten upstream');
      await untilStatus(agent, 'outage', (s) => s.lagRecords === 0); // and confirmed: nothing in flight when the link goes
      proxy.cut();
      await publish(11, 20);
      const cut = await untilStatus(agent, 'outage', (s) => s.state === 'retrying' && s.lagRecords === 10);
      expect(cut.lastError?.message).toBeTruthy();
      expect((await up.held()).distinct).toBe(before.distinct + 10); // nothing got through the cut link
      proxy.restore();
      await untilStatus(agent, 'outage', (s) => s.state === 'ok' && s.lagRecords === 0);
      await until(async () => (await up.held()).distinct === before.distinct + 20, 20_000, 'all twenty upstream');
      expect(await up.held()).toEqual({ distinct: before.distinct + 20, total: before.total + 20 });
    } finally {
      await client.endAsync();
      await proxy.close();
    }
  }, 90_000);

  it("a reading the server refuses goes to dead letters with the server's reason; the readings around it arrive", async () => {
    const { poison } = up;
    const agent = await startAgent({
      agent: { id: 'pi-poison' },
      sinks: [{ name: 'poisoned', ...up.sink('right'), ...poison.sink, ...RETRY_FAST }],
    });
    const client = await connect(agent.mqttUrl, { clientId: 'poison-pi' });
    const before = await up.held();
    for (const [topic, payload] of [
      ['c/poison', '{"v":1}'],
      ['c/poison', '{"v":2}'],
      [poison.topic, poison.payload],
      ['c/poison', '{"v":4}'],
      ['c/poison', '{"v":5}'],
    ])
      await client.publishAsync(topic, payload, { qos: 1 });
    await client.endAsync();
    const done = await untilStatus(agent, 'poisoned', (s) => s.lagRecords === 0 && s.deadLettered === 1);
    expect(done.state).toBe('ok');
    await until(async () => (await up.held()).distinct === before.distinct + 4, 20_000, 'the four others upstream');
    const [letter] = await agent.runtime.log.deadLetters(1);
    expect(letter).toMatchObject({ sink: 'poisoned', seq: 3, topic: poison.topic });
    expect(Buffer.from(letter.payload, 'base64').toString()).toBe(poison.payload);
    expect(letter.reasons[0].message).toMatch(poison.reason);
  }, 60_000);

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
