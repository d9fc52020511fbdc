import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, startAgent, tempDir, type InProcessAgent } from '../helpers/agent.js';
import { connect } from '../helpers/mqtt.js';
import { connect as rawConnect, publish as rawPublish } from '../helpers/raw.js';
import { until } from '../helpers/servers.js';

const envSchema = {
  name: 'env',
  version: 2,
  topics: ['sensors/+/env'],
  timestamp: 'ts',
  fields: {
    ts: { type: 'timestamp', required: true },
    temperature: { type: 'float', min: -40, max: 85, unit: '°C', required: true },
    humidity: { type: 'float', min: 0, max: 100 },
    sensor: { type: 'string', tag: true, pattern: '^[a-z0-9-]+$' },
    status: { type: 'string', enum: ['ok', 'fault'] },
  },
};
const strictSchema = {
  name: 'door',
  topics: ['doors/#'],
  mode: 'strict',
  fields: { open: { type: 'boolean', required: true }, count: 'integer' },
};

async function drained(agent: InProcessAgent) {
  expect(await agent.runtime.store!.caughtUp(agent.runtime.log.lastSeq)).toBe(true);
}

describe('ingest through the real broker', () => {
  let agent: InProcessAgent;
  beforeAll(async () => {
    agent = await startAgent({ ingest: { schemas: [envSchema, strictSchema], unmatched: 'accept' } });
  });
  afterAll(async () => {
    await agent.stop();
    cleanup(agent.dir);
  });

  it('stores QoS 0 and QoS 1 readings, PUBACKing QoS 1 only once they are durable', async () => {
    const client = await connect(agent.mqttUrl, { clientId: 'pi-7' });
    for (let i = 0; i < 20; i++) {
      await client.publishAsync(
        'sensors/pi-7/env',
        JSON.stringify({ ts: `2026-11-30T10:00:${String(i).padStart(2, '0')}Z`, temperature: 20 + i / 10, sensor: 'pi-7' }),
        { qos: 1 },
      );
      expect(agent.runtime.log.lastSeq).toBeGreaterThanOrEqual(i + 1); // acknowledged => committed
    }
    for (let i = 0; i < 5; i++) client.publish('sensors/pi-7/env', JSON.stringify({ ts: 1764496800 + i, temperature: 1 }), { qos: 0 });
    await client.publishAsync('sensors/pi-7/env', JSON.stringify({ ts: 1764496800000, temperature: 2 }), { qos: 1 });
    await drained(agent);
    const rows = await agent.runtime.store!.target.query({ topic: 'sensors/pi-7/env' });
    expect(rows).toHaveLength(26);
    expect(rows[0]).toMatchObject({
      agentId: 'test-agent',
      clientId: 'pi-7',
      qos: 1,
      schema: 'env@2',
      deviceTime: Date.parse('2026-11-30T10:00:00Z'),
      payload: { temperature: 20, sensor: 'pi-7' },
    });
    expect(rows.filter((r) => r.qos === 0).map((r) => r.deviceTime)).toEqual([0, 1, 2, 3, 4].map((i) => (1764496800 + i) * 1000));
    expect(rows[25].deviceTime).toBe(1764496800000);
    expect(rows.every((r, i) => i === 0 || r.seq > rows[i - 1].seq)).toBe(true);
    expect(typeof rows[0].receivedAt).toBe('number');
    await client.endAsync();
  });

  it('dead-letters invalid readings with every reason, durably, before acknowledging them', async () => {
    const client = await connect(agent.mqttUrl, { clientId: 'bad-sensor' });
    const before = agent.runtime.log.stats().deadLetters;
    await client.publishAsync('sensors/x/env', JSON.stringify({ temperature: 120, humidity: 'wet', sensor: 'X!', status: 'meh' }), {
      qos: 1,
    });
    expect(agent.runtime.log.stats().deadLetters).toBe(before + 1);
    const [dl] = await agent.runtime.log.deadLetters(1);
    expect(dl).toMatchObject({ topic: 'sensors/x/env', clientId: 'bad-sensor', truncated: false });
    expect(Buffer.from(dl.payload, 'base64').toString()).toContain('"temperature":120');
    expect(dl.reasons).toEqual(
      expect.arrayContaining([
        { path: '/ts', message: "must have required property 'ts'" },
        { path: '/temperature', message: 'must be <= 85' },
        { path: '/humidity', message: 'must be number' },
        { path: '/sensor', message: 'must match pattern "^[a-z0-9-]+$"' },
        { path: '/status', message: 'must be equal to one of the allowed values' },
      ]),
    );
    expect(client.connected).toBe(true);
    await client.endAsync();
  });

  it('dead-letters payloads that are not JSON, cutting long ones at the cap', async () => {
    const client = await connect(agent.mqttUrl);
    await client.publishAsync('sensors/y/env', 'x'.repeat(10_000), { qos: 1 });
    const [dl] = await agent.runtime.log.deadLetters(1);
    expect(dl.reasons[0].message).toMatch(/^payload is not JSON/);
    expect(dl).toMatchObject({ payloadBytes: 10_000, truncated: true });
    expect(Buffer.from(dl.payload, 'base64').length).toBe(4096);
    await client.endAsync();
  });

  it('strict schemas reject unknown fields; lenient ones keep them', async () => {
    const client = await connect(agent.mqttUrl);
    await client.publishAsync('doors/front', JSON.stringify({ open: true, count: 3, colour: 'red' }), { qos: 1 });
    const [dl] = await agent.runtime.log.deadLetters(1);
    expect(dl.reasons).toEqual([{ path: '/', message: 'must NOT have additional properties (colour)' }]);
    await client.publishAsync('sensors/z/env', JSON.stringify({ ts: 1, temperature: 3, firmware: '1.2' }), { qos: 1 });
    await drained(agent);
    const [row] = await agent.runtime.store!.target.query({ topic: 'sensors/z/env' });
    expect(row.payload).toEqual({ ts: 1, temperature: 3, firmware: '1.2' });
    await client.endAsync();
  });

  it('accepts topics without a schema as JSON (unmatched: accept), recording no schema', async () => {
    const client = await connect(agent.mqttUrl);
    await client.publishAsync('misc/thing', '{"any":"thing"}', { qos: 1 });
    await drained(agent);
    const [row] = await agent.runtime.store!.target.query({ topic: 'misc/thing' });
    expect(row.payload).toEqual({ any: 'thing' });
    expect(row.schema).toBeUndefined();
    await client.endAsync();
  });

  it('keeps pretty-printed JSON readings whole (the log holds one reading per line)', async () => {
    const client = await connect(agent.mqttUrl);
    const quarantined = agent.runtime.log.stats().quarantinedChunks;
    await client.publishAsync('misc/pretty', JSON.stringify({ a: 1, b: { c: 'x\ny' } }, null, 2).replace(/\n/g, '\r\n'), { qos: 1 });
    await client.publishAsync('misc/pretty', '{"after":true}', { qos: 1 });
    await drained(agent);
    const rows = await agent.runtime.store!.target.query({ topic: 'misc/pretty' });
    expect(rows.map((r) => r.payload)).toEqual([{ a: 1, b: { c: 'x\ny' } }, { after: true }]);
    expect(agent.runtime.log.stats().quarantinedChunks).toBe(quarantined);
    await client.endAsync();
  });
});

describe('topics without a schema', () => {
  it('raw keeps the bytes; reject dead-letters them', async () => {
    const raw = await startAgent({ ingest: { unmatched: 'raw' } });
    const c1 = await connect(raw.mqttUrl);
    await c1.publishAsync('bin/x', Buffer.from([0, 255, 10]), { qos: 1 });
    await drained(raw);
    const [row] = await raw.runtime.store!.target.query({ topic: 'bin/x' });
    expect(row).toMatchObject({ encoding: 'base64', payload: Buffer.from([0, 255, 10]).toString('base64') });
    await c1.endAsync();
    await raw.stop();
    cleanup(raw.dir);

    const reject = await startAgent({ ingest: { unmatched: 'reject' } });
    const c2 = await connect(reject.mqttUrl);
    await c2.publishAsync('bin/x', '{"a":1}', { qos: 1 });
    expect((await reject.runtime.log.deadLetters(1))[0].reasons).toEqual([{ path: '', message: 'no schema for this topic' }]);
    expect(reject.runtime.log.lastSeq).toBe(0);
    await c2.endAsync();
    await reject.stop();
    cleanup(reject.dir);
  });
});

describe('encrypted log', () => {
  it('stores readings from sealed chunks (the store decodes them with the key)', async () => {
    const dir = tempDir();
    const keyFile = join(dir, 'log.key');
    writeFileSync(keyFile, randomBytes(32).toString('hex'));
    const agent = await startAgent({ buffer: { encryption: { keyFile } } }, dir);
    const client = await connect(agent.mqttUrl);
    for (let i = 0; i < 3; i++) await client.publishAsync('sealed/x', JSON.stringify({ i }), { qos: 1 });
    await drained(agent);
    expect((await agent.runtime.store!.target.query({ topic: 'sealed/x' })).map((r) => r.payload)).toEqual([{ i: 0 }, { i: 1 }, { i: 2 }]);
    await client.endAsync();
    await agent.stop();
    cleanup(dir);
  });
});

describe('backpressure', () => {
  /** 20,000 QoS 1 PUBLISHes (~4 MB) written at once by a client that never waits; the most bytes awaiting commit. */
  async function firehose(config: Record<string, unknown>): Promise<number> {
    const agent = await startAgent({ buffer: { maxDelayMs: 50, maxRecords: 100000, ...(config.buffer as object) }, broker: config.broker });
    const socket = net.connect(agent.port('mqtt'), '127.0.0.1');
    socket.on('error', () => {});
    await new Promise((r) => socket.once('connect', r));
    const payload = JSON.stringify({ v: 1, pad: 'x'.repeat(150) });
    socket.write(rawConnect({ clientId: 'firehose' }));
    await new Promise((r) => socket.once('data', r)); // CONNACK
    const burst = Buffer.concat(Array.from({ length: 20_000 }, (_, i) => rawPublish('fire/hose', payload, 1, (i % 65535) + 1)));
    // Looked at after every append (a timer sees it only between turns of the event loop, and a
    // commit flushed in the same turn had already taken what waited: 0 on a loaded machine).
    let maxPending = 0;
    const log = agent.runtime.log;
    const append = log.append.bind(log);
    log.append = (record) => {
      const appended = append(record);
      maxPending = Math.max(maxPending, log.pendingBytes);
      return appended;
    };
    socket.write(burst);
    await until(() => agent.runtime.log.lastSeq >= 20_000, 20_000, 'the burst in the log');
    expect(agent.runtime.log.lastSeq).toBe(20_000);
    socket.destroy();
    await agent.stop();
    cleanup(agent.dir);
    return maxPending;
  }

  it('stops reading a QoS 1 publisher with maxInflightPerClient messages awaiting PUBACK, so memory stays bounded', async () => {
    const maxPending = await firehose({ broker: { limits: { maxInflightPerClient: 1000 } } });
    expect(maxPending).toBeGreaterThan(0);
    expect(maxPending).toBeLessThan(1024 * 1024); // 1,000 readings and a socket read's worth, not the 4 MB burst
  }, 30_000);

  it('stops reading publishers while more than buffer.maxPendingBytes await their commit', async () => {
    const maxPending = await firehose({ broker: { limits: { maxInflightPerClient: 65535 } }, buffer: { maxPendingBytes: 64 * 1024 } });
    expect(maxPending).toBeGreaterThan(64 * 1024);
    expect(maxPending).toBeLessThan(256 * 1024); // the limit and a socket read's worth
  }, 30_000);

  it('drops QoS 0 readings beyond maxPendingBytes (policy drop, counted); policy block keeps them all', async () => {
    for (const policy of ['drop', 'block'] as const) {
      const agent = await startAgent({ ingest: { qos0Overflow: policy }, buffer: { maxDelayMs: 100, maxPendingBytes: 4096 } });
      const client = await connect(agent.mqttUrl);
      for (let i = 0; i < 2000; i++) client.publish('q0/x', JSON.stringify({ i, pad: 'y'.repeat(100) }), { qos: 0 });
      await client.publishAsync('q0/x', '{"last":true}', { qos: 1 });
      await drained(agent);
      const stored = agent.runtime.log.lastSeq;
      if (policy === 'drop') {
        expect(agent.runtime.ingestStats.qos0Dropped).toBeGreaterThan(0);
        expect(stored + agent.runtime.ingestStats.qos0Dropped).toBe(2001);
      } else {
        expect(agent.runtime.ingestStats.qos0Dropped).toBe(0);
        expect(stored).toBe(2001);
      }
      await client.endAsync();
      await agent.stop();
      cleanup(agent.dir);
    }
  }, 30_000);
});
