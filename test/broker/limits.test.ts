import { createRequire } from 'node:module';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type EmbeddedBroker } from '../../embedded-broker/index.js';
import { cleanup, portOf, startAgent, tempDir, type InProcessAgent } from '../helpers/agent.js';
import { connackCode, connect, connectCollecting } from '../helpers/mqtt.js';
import { connect as rawConnect, exchange, publish, subscribe } from '../helpers/raw.js';
import { until } from '../helpers/servers.js';
import { quiet } from '../helpers/logger.js';

const limits = {
  maxPayloadBytes: 1024,
  maxTopicLength: 40,
  maxTopicLevels: 4,
  maxClients: 3,
  maxInflightPerClient: 5,
  maxQueuedPerClient: 3,
  connectTimeoutMs: 300,
  drainTimeoutMs: 500,
  maxConnectBytes: 8192,
  maxPendingLogins: 64,
  maxPendingPerAddress: 8,
};

async function closedBy(port: number, ...packets: Buffer[]): Promise<boolean> {
  return (await exchange(port, [rawConnect(), ...packets], 1000)).closed;
}

describe('broker limits', () => {
  let agent: InProcessAgent;
  const port = () => agent.port('mqtt');
  beforeAll(async () => {
    // mqtt-packet as a process loads it (files share their process: another's MQTT.js client may have
    // built the table), so that what the test sees after the agent's packets is the agent's doing.
    const load = createRequire(import.meta.url);
    const numbers = load('mqtt-packet/numbers.js') as { cache: Record<number, Buffer> };
    for (const key of Object.keys(numbers.cache)) delete numbers.cache[Number(key)];
    (load('mqtt-packet') as { writeToStream: { cacheNumbers: boolean } }).writeToStream.cacheNumbers = true;
    agent = await startAgent({ broker: { limits } });
  });
  afterAll(async () => {
    await agent.stop();
    cleanup(agent.dir);
  });

  it("leaves mqtt-packet's table of 65,536 pre-built number Buffers unbuilt (6 MB of heap)", async () => {
    const acked = await exchange(port(), [rawConnect({ clientId: 'numbers' }), publish('n/x', 'p', 1, 7)], 500);
    expect(acked.received.length).toBeGreaterThan(4); // CONNACK and PUBACK were generated
    const numbers = createRequire(import.meta.url)('mqtt-packet/numbers.js') as { cache: Record<number, Buffer> };
    expect(Object.keys(numbers.cache)).toHaveLength(0);
  });

  it('disconnects a client whose payload exceeds maxPayloadBytes', async () => {
    expect(await closedBy(port(), publish('a/b', Buffer.alloc(1024, 1), 1))).toBe(false);
    expect(await closedBy(port(), publish('a/b', Buffer.alloc(1025, 1), 1))).toBe(true);
  });

  it('refuses an oversized packet from its header, before the body arrives', async () => {
    const header = Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]); // 256 MB PUBLISH announced, nothing sent
    expect(await closedBy(port(), header)).toBe(true);
  });

  it('disconnects on topics longer or deeper than allowed, in PUBLISH and SUBSCRIBE', async () => {
    expect(await closedBy(port(), publish('t'.repeat(40), 'x'))).toBe(false);
    expect(await closedBy(port(), publish('t'.repeat(41), 'x'))).toBe(true);
    expect(await closedBy(port(), publish('a/b/c/d', 'x'))).toBe(false);
    expect(await closedBy(port(), publish('a/b/c/d/e', 'x'))).toBe(true);
    expect(await closedBy(port(), subscribe('a/b/c/d/#'))).toBe(true);
  });

  it('answers CONNACK 0x03 once maxClients are connected', async () => {
    const clients = await Promise.all([0, 1, 2].map((i) => connect(agent.mqttUrl, { clientId: `c${i}` })));
    expect(await connackCode(agent.mqttUrl, { clientId: 'one-too-many' })).toBe(3);
    await clients[0].endAsync();
    await until(() => agent.runtime.broker.stats().clientsConnected === 2, 5000, 'the slot freed');
    expect(await connackCode(agent.mqttUrl, { clientId: 'room-again' })).toBe(0);
    await Promise.all(clients.slice(1).map((c) => c.endAsync()));
  });

  it('closes connections that never send CONNECT', async () => {
    const r = await exchange(port(), [], 2000);
    expect(r.closed).toBe(true);
  });

  it('keeps at most maxQueuedPerClient messages for an offline session, counting the rest', async () => {
    const sub = await connect(agent.mqttUrl, { clientId: 'sleepy', clean: false });
    await sub.subscribeAsync('q/#', { qos: 1 });
    await sub.endAsync();
    const before = agent.runtime.broker.stats().queueDropped;
    const pub = await connect(agent.mqttUrl);
    for (let i = 0; i < 5; i++) await pub.publishAsync('q/x', `m${i}`, { qos: 1 });
    await pub.endAsync();
    const { client: back, messages } = await connectCollecting(agent.mqttUrl, { clientId: 'sleepy', clean: false }, 5, 1500);
    expect((await messages).map((m) => m.payload)).toEqual(['m0', 'm1', 'm2']);
    expect(agent.runtime.broker.stats().queueDropped).toBe(before + 2);
    await back.endAsync();
  });

  it('drops a subscriber that stops reading, so its backlog cannot grow memory', async () => {
    const socket = net.connect(port(), '127.0.0.1');
    socket.on('error', () => {});
    await new Promise((r) => socket.once('connect', r));
    socket.write(Buffer.concat([rawConnect({ clientId: 'stuck' }), subscribe('flood/#', 0)]));
    await new Promise((r) => setTimeout(r, 200));
    socket.pause(); // stop reading: kernel buffers fill, then the broker's writes to it stop draining
    const pub = await connect(agent.mqttUrl, { clientId: 'flooder' });
    const connected = () => agent.runtime.broker.stats().clientsConnected;
    expect(connected()).toBe(2);
    const payload = JSON.stringify({ pad: 'x'.repeat(1000) }); // a reading ingest takes (garbage would fill the dead letters and hold the publisher)
    const deadline = Date.now() + 10_000;
    for (let i = 0; i < 20_000 && connected() === 2 && Date.now() < deadline; i++) {
      pub.publish('flood/x', payload, { qos: 0 });
      if (i % 100 === 0) await new Promise((r) => setTimeout(r, 5));
    }
    await until(() => connected() < 2, Math.max(0, deadline - Date.now()), 'the stuck subscriber gone').catch(() => {});
    expect(connected()).toBe(1); // the stuck subscriber is gone, the publisher is still there
    expect(pub.connected).toBe(true);
    socket.destroy();
    await pub.endAsync();
  }, 20_000);
});

describe('in-flight limit (broker with an ingest hook that holds acknowledgements)', () => {
  const dir = tempDir();
  let broker: EmbeddedBroker;
  let held: { resolve: () => void; reject: (err: Error) => void }[] = [];
  beforeAll(async () => {
    broker = await startBroker({
      version: 'test',
      persistenceDir: dir,
      mqtt: { host: '127.0.0.1', port: 0 },
      allowAnonymous: 'loopback',
      acl: [],
      users: { verify: async () => null, roles: async () => [] },
      limits,
      loginThrottle: { failuresBeforeDelay: 3, failuresBeforeBan: 10, failuresBeforeAddressBan: 30, banMs: 60_000, hashConcurrency: 1 },
      sysIntervalSec: 0,
      persistentSessionExpiryMs: 86_400_000,
      onPublish: (m) =>
        m.qos > 0 ? { safe: new Promise<void>((resolve, reject) => held.push({ resolve, reject })), holdSender: false } : undefined,
      logger: quiet,
    });
  });
  afterAll(async () => {
    held.forEach((h) => h.resolve());
    await broker.close();
    cleanup(dir);
  });

  /** A raw client; `received()` is every byte after the CONNACK. */
  async function rawClient(clientId: string) {
    const socket = net.connect(portOf(broker.listeners.mqtt), '127.0.0.1');
    let bytes = Buffer.alloc(0);
    let closed = false;
    socket.on('data', (d) => (bytes = Buffer.concat([bytes, d])));
    socket.on('error', () => {});
    socket.on('close', () => (closed = true));
    socket.write(rawConnect({ clientId }));
    await until(() => bytes.length >= 4);
    return { socket, received: () => bytes.subarray(4), closed: () => closed };
  }
  const settle = () => new Promise((r) => setTimeout(r, 200));
  const pubacks = (...ids: number[]) => Buffer.concat(ids.map((id) => Buffer.from([0x40, 2, 0, id])));

  it('sends PUBACKs in order once each message is safe, and stops reading while maxInflightPerClient wait', async () => {
    held = [];
    const c = await rawClient('window');
    for (const id of [1, 2, 3, 4, 5]) c.socket.write(publish('h/x', 'p', 1, id));
    await until(() => held.length === 5); // read on while they wait
    held[1].resolve();
    await settle();
    expect(c.received()).toEqual(Buffer.alloc(0)); // 2 is safe, but 1 goes first
    held[0].resolve();
    await until(() => c.received().length === 8);
    expect(c.received()).toEqual(pubacks(1, 2));

    for (const id of [6, 7, 8]) c.socket.write(publish('h/x', 'p', 1, id));
    await until(() => held.length === 8); // 3-7 fill the window of 5: 8 is handled, then held
    c.socket.write(publish('h/x', 'p', 1, 9));
    await settle();
    expect(held.length).toBe(8); // 9 is not read until 8 is acknowledged
    held.slice(2).forEach((h) => h.resolve());
    await until(() => held.length === 9);
    held[8].resolve();
    await until(() => c.received().length === 4 * 9);
    expect(c.received()).toEqual(pubacks(1, 2, 3, 4, 5, 6, 7, 8, 9));
    expect(c.closed()).toBe(false);
    c.socket.destroy();
  });

  it('stops reading a publisher that does not read its PUBACKs, until its connection drains', async () => {
    held = [];
    const written: Buffer[] = [];
    let peerReads = false;
    let stuck: (() => void) | undefined;
    const conn = new Duplex({
      read() {},
      writableHighWaterMark: 16,
      write(chunk: Buffer, _enc, done) {
        written.push(chunk);
        if (peerReads) done();
        else stuck = done;
      },
    });
    broker.handleStream(conn, 'test', '127.0.0.1');
    conn.push(rawConnect({ clientId: 'deaf' }));
    const settleAll = async (n: number) => {
      await until(() => held.length === n);
      held.splice(0).forEach((h) => h.resolve());
      await settle();
    };
    for (const id of [1, 2, 3, 4, 5]) conn.push(publish('h/x', 'p', 1, id));
    await settleAll(5); // CONNACK and 5 PUBACKs (24 bytes) now wait in a 16-byte write buffer
    conn.push(publish('h/x', 'p', 1, 6));
    await settle();
    expect(held.length).toBe(0); // not read while full
    peerReads = true;
    stuck?.(); // 'drain'
    await settleAll(1);
    expect(Buffer.concat(written)).toEqual(Buffer.concat([Buffer.from([0x20, 2, 0, 0]), pubacks(1, 2, 3, 4, 5, 6)]));
    conn.destroy();
  });

  it('disconnects a client whose message could not be made safe, and acknowledges nothing after it', async () => {
    held = [];
    const c = await rawClient('unsafe');
    for (const id of [1, 2, 3]) c.socket.write(publish('h/x', 'p', 1, id));
    await until(() => held.length === 3);
    held[0].resolve();
    held[2].resolve();
    held[1].reject(new Error('disk full'));
    await until(() => c.closed());
    expect(c.received()).toEqual(pubacks(1));
  });
});
