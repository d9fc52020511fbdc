import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeRecord } from '../../../log/record.js';
import { createLogger } from '../../../lib/logger.js';
import { cleanup, startAgent } from '../../../../test/helpers/agent.js';
import { connect } from '../../../../test/helpers/mqtt.js';
import { makePki } from '../../../../test/helpers/pki.js';
import { createDatabase, PG_PASSWORD, startPostgresServer, until, type TestDatabase } from '../../../../test/helpers/servers.js';
import { tempDir } from '../../../../test/helpers/agent.js';
import { OutBatch } from '../record.js';
import { PostgresConfigSchema } from './config.js';
import { PostgresSink } from './index.js';
import { Value } from '@sinclair/typebox/value';
import { statusOf, untilStatus } from '../../../../test/helpers/sync.js';

const envSchema = {
  name: 'env',
  topics: ['sensors/+/env'],
  timestamp: 'ts',
  fields: { ts: 'timestamp', temperature: 'float', count: 'integer', ok: 'boolean', site: { type: 'string', tag: true } },
};

describe('PostgreSQL sink', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createDatabase();
  });
  afterAll(async () => {
    await db.drop();
  });

  it('creates its table and writes every reading once, with typed columns from the schema', async () => {
    const agent = await startAgent({
      ingest: { schemas: [envSchema] },
      sinks: [
        {
          name: 'cloud',
          type: 'postgres',
          url: db.url,
          password: PG_PASSWORD,
          table: 'readings_a',
          batch: { maxAgeMs: 50 },
          columns: [
            { field: 'temperature' },
            { field: 'count' },
            { field: 'ok' },
            { field: 'site' },
            { field: 'ts', column: 'device_ts' },
            { field: 'nested.v', type: 'integer' },
          ],
        },
      ],
    });
    try {
      const client = await connect(agent.mqttUrl, { clientId: 'pi-3' });
      for (let i = 0; i < 40; i++) {
        const payload = { ts: 1764496800000 + i, temperature: 20.5 + i, count: i, ok: i % 2 === 0, site: 'north', nested: { v: i } };
        await client.publishAsync('sensors/pi-3/env', JSON.stringify(payload), { qos: 1 });
      }
      await client.publishAsync('sensors/pi-3/env', JSON.stringify({ temperature: 'n/a' }), { qos: 1 }); // dead-lettered by ingest
      await client.publishAsync('other/x', JSON.stringify({ text: 'tab\there, back\\slash, "quotes"\nnewline' }), { qos: 1 });
      await client.endAsync();
      const rows = await until(async () => {
        const r = await db.query('SELECT * FROM readings_a ORDER BY seq');
        return r.length === 41 && r;
      });
      expect(rows[0]).toMatchObject({
        agent_id: 'test-agent',
        seq: '1',
        topic: 'sensors/pi-3/env',
        client_id: 'pi-3',
        schema_id: 'env@1',
        clock_synced: expect.any(Boolean),
        payload: { ts: 1764496800000, temperature: 20.5, count: 0, ok: true, site: 'north', nested: { v: 0 } },
        temperature: 20.5,
        count: '0',
        ok: true,
        site: 'north',
        nested_v: '0',
      });
      expect((rows[0].ts as Date).getTime()).toBe(1764496800000);
      expect((rows[0].device_ts as Date).getTime()).toBe(1764496800000);
      expect(rows.map((r) => Number(r.seq))).toEqual(Array.from({ length: 41 }, (_, i) => i + 1));
      expect(rows[40].payload).toEqual({ text: 'tab\there, back\\slash, "quotes"\nnewline' });
      expect(rows[40].temperature).toBeNull();
      const columns = await db.query<{ column_name: string; data_type: string }>(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'readings_a'",
      );
      expect(Object.fromEntries(columns.map((c) => [c.column_name, c.data_type]))).toMatchObject({
        temperature: 'double precision',
        count: 'bigint',
        ok: 'boolean',
        site: 'text',
        device_ts: 'timestamp with time zone',
        nested_v: 'bigint',
        payload: 'jsonb',
      });
      const [pk] = await db.query<{ def: string }>(
        "SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = 'readings_a'::regclass AND contype = 'p'",
      );
      expect(pk.def).toBe('PRIMARY KEY (agent_id, seq)');
      expect(await statusOf(agent, 'cloud')).toMatchObject({ state: 'ok', lagRecords: 0, sent: { records: 41 } });
    } finally {
      await agent.stop();
      cleanup(agent.dir);
    }
  });

  it('a resent batch adds no rows, also when it overlaps rows already written (staging + ON CONFLICT)', async () => {
    const config = Value.Default(PostgresConfigSchema, {
      name: 'x',
      type: 'postgres',
      url: db.url,
      password: PG_PASSWORD,
      table: 'resend',
    }) as never;
    const sink = new PostgresSink(config, {
      agentId: 'pi-9',
      schemas: { byId: () => undefined, list: () => [] },
      logger: createLogger('silent'),
    });
    const records = (from: number, to: number) =>
      OutBatch.of(
        Array.from({ length: to - from + 1 }, (_, i) =>
          encodeRecord(from + i, {
            topic: 't',
            receivedAt: 1764496800000 + i,
            clockSynced: true,
            payloadJson: `{"i":${from + i}}`,
            clientId: 'c',
            qos: 1,
          }),
        ),
        'pi-9',
      );
    const write = async (from: number, to: number) =>
      sink.write((await sink.encode(records(from, to))).encoded, new AbortController().signal);
    try {
      await sink.start();
      await write(1, 100);
      await write(1, 100); // the same batch again: a retry after a lost confirmation
      await write(51, 150); // half old, half new
      await write(151, 200); // clean again: back to plain COPY
      const [{ n, distinct, max }] = await db.query<{ n: string; distinct: string; max: string }>(
        'SELECT count(*) AS n, count(DISTINCT seq) AS distinct, max(seq) AS max FROM resend',
      );
      expect({ n, distinct, max }).toEqual({ n: '200', distinct: '200', max: '200' });
    } finally {
      await sink.close();
    }
  });

  it('a reading PostgreSQL refuses goes to dead letters; the rest of its batch is written', async () => {
    const agent = await startAgent({
      sinks: [{ name: 'cloud', type: 'postgres', url: db.url, password: PG_PASSWORD, table: 'refusals', batch: { maxAgeMs: 300 } }],
    });
    try {
      const client = await connect(agent.mqttUrl);
      for (let i = 0; i < 10; i++) {
        // jsonb cannot hold \u0000: valid JSON, refused by PostgreSQL.
        const payload = i === 6 ? '{"s":"a\\u0000b"}' : JSON.stringify({ i });
        await client.publishAsync('x/y', payload, { qos: 1 });
      }
      await client.endAsync();
      await untilStatus(agent, 'cloud', (s) => s.lagRecords === 0 && s.sent.records > 0);
      const rows = await db.query<{ seq: string }>('SELECT seq FROM refusals ORDER BY seq');
      expect(rows.map((r) => Number(r.seq))).toEqual([1, 2, 3, 4, 5, 6, 8, 9, 10]);
      const [dl] = await agent.runtime.log.deadLetters(1);
      expect(dl).toMatchObject({ sink: 'cloud', consumer: 'sink:cloud', seq: 7, topic: 'x/y' });
      expect(Buffer.from(dl.payload, 'base64').toString()).toBe('{"s":"a\\u0000b"}');
      expect(dl.reasons[0].message).toMatch(/^postgres: unsupported Unicode escape sequence/);
      expect((await statusOf(agent, 'cloud')).deadLettered).toBe(1);
    } finally {
      await agent.stop();
      cleanup(agent.dir);
    }
  });
});

describe('PostgreSQL sink over TLS', () => {
  const dir = tempDir();
  const pki = makePki(dir);
  let server: Awaited<ReturnType<typeof startPostgresServer>>;
  beforeAll(async () => {
    server = await startPostgresServer({ cert: pki.serverCert, key: pki.serverKey });
  });
  afterAll(async () => {
    await server?.stop();
    cleanup(dir);
  });

  const tlsSink = (ca: string) => ({
    name: 'cloud',
    type: 'postgres',
    url: server.url,
    password: PG_PASSWORD,
    sslmode: 'verify-full',
    ca,
    batch: { maxAgeMs: 20 },
  });

  it('sslmode verify-full with the CA: the connection is encrypted and the reading arrives', async () => {
    const agent = await startAgent({ sinks: [tlsSink(pki.ca)] });
    try {
      const client = await connect(agent.mqttUrl);
      await client.publishAsync('a/b', '{"v":1}', { qos: 1 });
      await client.endAsync();
      await untilStatus(agent, 'cloud', (s) => s.sent.records === 1);
      const check = new (await import('pg')).default.Client({
        host: 'localhost',
        port: server.port,
        user: 'edge_test',
        database: 'postgres',
        password: PG_PASSWORD,
      });
      await check.connect();
      const { rows } = await check.query(
        "SELECT s.ssl, s.version FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'edge-agent'",
      );
      const { rows: data } = await check.query('SELECT payload FROM telemetry');
      await check.end();
      expect(rows.length).toBeGreaterThan(0);
      expect(rows.every((r) => r.ssl === true && /^TLSv1\.[23]$/.test(r.version))).toBe(true);
      expect(data).toEqual([{ payload: { v: 1 } }]);
    } finally {
      await agent.stop();
      cleanup(agent.dir);
    }
  });

  it('a server certificate the CA did not sign: down, with the reason', async () => {
    const other = makePki(tempDir());
    const agent = await startAgent({ sinks: [tlsSink(other.ca)] });
    try {
      const client = await connect(agent.mqttUrl);
      await client.publishAsync('a/b', '{"v":2}', { qos: 1 });
      await client.endAsync();
      const s = await untilStatus(agent, 'cloud', (st) => st.state === 'down');
      expect(s.lastError?.message).toMatch(/^postgres: .*(certificate|signature)/i);
    } finally {
      await agent.stop();
      cleanup(agent.dir);
    }
  });
});
