import { readFileSync } from 'node:fs';
import type { IClientOptions, MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, startAgent, tempDir } from '../../../../test/helpers/agent.js';
import { makePki } from '../../../../test/helpers/pki.js';
import { connect } from '../../../../test/helpers/mqtt.js';
import { startMosquitto, TcpProxy, until, type ServerProcess } from '../../../../test/helpers/servers.js';
import { statusOf, untilStatus } from '../../../../test/helpers/sync.js';

interface Received {
  topic: string;
  payload: Buffer;
  userProperties?: Record<string, string | string[]>;
}

async function subscriber(
  url: string,
  filter: string,
  protocolVersion: 4 | 5 = 4,
  extra: IClientOptions = {},
): Promise<{ client: MqttClient; got: Received[] }> {
  const got: Received[] = [];
  const client = await connect(url, { protocolVersion, ...extra });
  client.on('message', (topic, payload, packet) => got.push({ topic, payload, userProperties: packet.properties?.userProperties }));
  await client.subscribeAsync(filter, { qos: 1 });
  return { client, got };
}

describe('MQTT bridge sink (Mosquitto upstream)', () => {
  let upstream: ServerProcess;
  beforeAll(async () => {
    upstream = await startMosquitto({ users: { bridge: 'bridge-pw', reader: 'reader-pw' } });
  });
  afterAll(async () => {
    await upstream.stop();
  });
  const reader = (filter: string, v: 4 | 5 = 4) => subscriber(upstream.url.replace('mqtt://', 'mqtt://reader:reader-pw@'), filter, v);

  it('republishes each reading at QoS 1 under the topic template, as a record envelope with (agent, seq)', async () => {
    const sub = await reader('fleet/#');
    const agent = await startAgent({
      sinks: [{ name: 'up', type: 'mqtt', url: upstream.url, username: 'bridge', password: 'bridge-pw', batch: { maxAgeMs: 20 } }],
    });
    try {
      const client = await connect(agent.mqttUrl, { clientId: 'pi-2' });
      await client.publishAsync('sensors/pi-2/env', '{"t":21.5}', { qos: 1 });
      await client.publishAsync('sensors/pi-2/env', '{"t":21.6}', { qos: 0 });
      await client.endAsync();
      await until(() => sub.got.length >= 2);
      expect(sub.got.map((m) => m.topic)).toEqual(['fleet/test-agent/sensors/pi-2/env', 'fleet/test-agent/sensors/pi-2/env']);
      const first = JSON.parse(sub.got[0].payload.toString());
      expect(first).toMatchObject({ agent: 'test-agent', seq: 1, topic: 'sensors/pi-2/env', payload: { t: 21.5 } });
      expect(typeof first.receivedAt).toBe('number');
      expect(JSON.parse(sub.got[1].payload.toString())).toMatchObject({ seq: 2, payload: { t: 21.6 } });
      expect(await statusOf(agent, 'up')).toMatchObject({ state: 'ok', lagRecords: 0 });
    } finally {
      await agent.stop();
      cleanup(agent.dir);
      await sub.client.endAsync();
    }
  });

  it('MQTT 5 with raw payloads: the bytes as received, agent and seq as user properties', async () => {
    const sub = await reader('raw/#', 5);
    const agent = await startAgent({
      ingest: { unmatched: 'raw' },
      sinks: [
        {
          name: 'up',
          type: 'mqtt',
          url: upstream.url,
          username: 'bridge',
          password: 'bridge-pw',
          protocolVersion: 5,
          payload: 'raw',
          topic: 'raw/{topic}',
          batch: { maxAgeMs: 20 },
        },
      ],
    });
    try {
      const client = await connect(agent.mqttUrl);
      await client.publishAsync('bin/x', Buffer.from([0, 1, 2, 255]), { qos: 1 });
      await client.endAsync();
      await until(() => sub.got.length >= 1);
      expect(sub.got[0].topic).toBe('raw/bin/x');
      expect([...sub.got[0].payload]).toEqual([0, 1, 2, 255]);
      expect(sub.got[0].userProperties).toEqual({ agent: 'test-agent', seq: '1' });
    } finally {
      await agent.stop();
      cleanup(agent.dir);
      await sub.client.endAsync();
    }
  });

  it('link cut under load, then restored: every reading arrives, in order per topic (repeats carry the same seq)', async () => {
    const proxy = await new TcpProxy(upstream.port).listen();
    const sub = await reader('fleet/#');
    const agent = await startAgent({
      sinks: [
        {
          name: 'up',
          type: 'mqtt',
          url: `mqtt://127.0.0.1:${proxy.port}`,
          username: 'bridge',
          password: 'bridge-pw',
          batch: { maxAgeMs: 20, maxRecords: 50 },
          retry: { initialMs: 100, maxMs: 400 },
          timeoutMs: 2000,
        },
      ],
    });
    try {
      const client = await connect(agent.mqttUrl);
      const total = 600;
      for (let i = 0; i < total; i++) {
        await client.publishAsync(`s/${i % 3}`, JSON.stringify({ i }), { qos: 1 });
        if (i === 150) proxy.cut();
        if (i === 450) {
          expect((await statusOf(agent, 'up')).state).toBe('retrying');
          proxy.restore();
        }
        if (i % 50 === 0) await new Promise((r) => setTimeout(r, 20));
      }
      await client.endAsync();
      await untilStatus(agent, 'up', (s) => s.lagRecords === 0, 30_000);
      await until(() => new Set(sub.got.map((m) => JSON.parse(m.payload.toString()).seq)).size === total, 10_000, 'every seq upstream');
      const firstSeen = new Map<number, { topic: string; i: number }>();
      for (const m of sub.got) {
        const env = JSON.parse(m.payload.toString()) as { seq: number; topic: string; payload: { i: number } };
        if (!firstSeen.has(env.seq)) firstSeen.set(env.seq, { topic: env.topic, i: env.payload.i });
      }
      expect([...firstSeen.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, k) => k + 1));
      for (const topic of ['s/0', 's/1', 's/2']) {
        const order = [...firstSeen.values()].filter((v) => v.topic === topic).map((v) => v.i);
        expect(order).toEqual([...order].sort((a, b) => a - b));
      }
    } finally {
      await agent.stop();
      cleanup(agent.dir);
      await sub.client.endAsync();
      await proxy.close();
    }
  });
});

describe('MQTT bridge sink: a message the upstream broker will not take', () => {
  it('a packet over its max_packet_size closes the connection, with no PUBACK: after 5 losses on it that reading is dead-lettered, the others arrive', async () => {
    const upstream = await startMosquitto({ extra: ['max_packet_size 400'] });
    const sub = await subscriber(upstream.url, 'big/#');
    const agent = await startAgent({
      sinks: [
        { name: 'up', type: 'mqtt', url: upstream.url, topic: 'big/{topic}', batch: { maxAgeMs: 20 }, retry: { initialMs: 10, maxMs: 50 } },
      ],
    });
    try {
      const client = await connect(agent.mqttUrl);
      for (const payload of [{ n: 1 }, { n: 2, pad: 'x'.repeat(1000) }, { n: 3 }])
        await client.publishAsync('s/x', JSON.stringify(payload), { qos: 1 });
      await client.endAsync();
      const done = await untilStatus(agent, 'up', (s) => s.lagRecords === 0 && s.deadLettered === 1, 30_000);
      expect(done.state).toBe('ok');
      await until(() => sub.got.length >= 2, 10_000, 'the two others upstream');
      // The batch was sent again after each loss: the reading before the big one arrives again, with its seq (at least once).
      const seqs = sub.got.map((m) => (JSON.parse(m.payload.toString()) as { seq: number }).seq);
      expect([...new Set(seqs)]).toEqual([1, 3]);
      const [letter] = await agent.runtime.log.deadLetters(1);
      expect(letter).toMatchObject({ sink: 'up', seq: 2 });
      expect(letter.reasons[0].message).toMatch(
        /^mqtt: the broker closed the connection each of the last \d+ times this reading was the first unacknowledged/,
      );
    } finally {
      await agent.stop();
      cleanup(agent.dir);
      await sub.client.endAsync();
      await upstream.stop();
    }
  }, 60_000);
});

describe('MQTT bridge sink over TLS', () => {
  const dir = tempDir();
  const pki = makePki(dir);
  let upstream: ServerProcess;
  beforeAll(async () => {
    upstream = await startMosquitto({ tls: { cert: pki.serverCert, key: pki.serverKey } });
  });
  afterAll(async () => {
    await upstream.stop();
    cleanup(dir);
  });

  it('mqtts with the CA: delivered; with a CA that did not sign the broker: down, with the reason', async () => {
    const sub = await subscriber(upstream.url, 'fleet/#', 4, { ca: readFileSync(pki.ca) });
    const agent = await startAgent({
      sinks: [
        { name: 'good', type: 'mqtt', url: upstream.url, ca: pki.ca, batch: { maxAgeMs: 20 } },
        { name: 'bad', type: 'mqtt', url: upstream.url, ca: makePki(tempDir()).ca, clientId: 'other-{agent}', batch: { maxAgeMs: 20 } },
      ],
    });
    try {
      const client = await connect(agent.mqttUrl);
      await client.publishAsync('t/1', '{"v":1}', { qos: 1 });
      await client.endAsync();
      await until(() => sub.got.length >= 1);
      expect(JSON.parse(sub.got[0].payload.toString())).toMatchObject({ seq: 1, payload: { v: 1 } });
      const bad = await untilStatus(agent, 'bad', (st) => st.state === 'down');
      expect(bad.lastError?.message).toMatch(/^mqtt: .*(certificate|signature)/i);
      expect(bad.lagRecords).toBe(1);
    } finally {
      await agent.stop();
      cleanup(agent.dir);
      await sub.client.endAsync();
    }
  });
});
