import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { cleanup, startAgent, tempDir, writeConfig, type InProcessAgent } from '../helpers/agent.js';
import { collect, connackCode, connect } from '../helpers/mqtt.js';
import { makePki, type Pki } from '../helpers/pki.js';
import { addUser } from '../helpers/users.js';
import { until } from '../helpers/servers.js';

describe('MQTT over TLS', () => {
  const dir = tempDir();
  let pki: Pki;
  let agent: InProcessAgent;
  let strict: InProcessAgent;
  const acl = [
    { user: 'pi-7', publish: ['sensors/pi-7/#'], subscribe: ['sensors/#'] },
    { user: 'app', publish: [], subscribe: ['sensors/#'] },
  ];

  beforeAll(async () => {
    pki = makePki(dir);
    await addUser(writeConfig(dir), 'app', 'app-pw');
    await addUser(writeConfig(dir), 'pi-7', 'unused-password'); // known by name; logs in by certificate
    const tls = { port: 0, host: '127.0.0.1', cert: pki.serverCert, key: pki.serverKey, ca: pki.ca };
    agent = await startAgent(
      { broker: { mqtts: { ...tls, clientCertificates: 'optional', useIdentityAsUsername: true }, allowAnonymous: false, acl } },
      dir,
    );
    strict = await startAgent({ broker: { mqtts: { ...tls, clientCertificates: 'required' } } }, tempDir());
  });
  afterAll(async () => {
    await agent.stop();
    await strict.stop();
    cleanup(dir);
  });

  const url = (a: InProcessAgent) => `mqtts://localhost:${a.port('mqtts')}`;

  it('serves TLS with a password login, verified against the test CA', async () => {
    const client = await connect(url(agent), { ca: readFileSync(pki.ca), username: 'app', password: 'app-pw' });
    expect(client.connected).toBe(true);
    await client.endAsync();
    expect(await connackCode(url(agent), { ca: readFileSync(pki.ca) })).toBe(5); // anonymous off
  });

  it("authenticates a client certificate as the user named by its CN, with that user's ACL", async () => {
    const { cert, key } = pki.clientCert('pi-7');
    const reader = await connect(url(agent), { ca: readFileSync(pki.ca), username: 'app', password: 'app-pw' });
    await reader.subscribeAsync('sensors/#', { qos: 1 });
    const got = collect(reader, 2, 1500);
    const device = await connect(url(agent), { ca: readFileSync(pki.ca), cert: readFileSync(cert), key: readFileSync(key) });
    await device.publishAsync('sensors/pi-7/t', 'ok', { qos: 1 });
    await device.publishAsync('sensors/pi-8/t', 'denied', { qos: 1 });
    expect((await got).map((m) => m.payload)).toEqual(['ok']);
    await Promise.all([reader.endAsync(), device.endAsync()]);
  });

  it('refuses a certificate whose CN names no known user (0x05), unless certificateOnlyUsers allows it', async () => {
    const { cert, key } = pki.clientCert('stranger');
    const device = { ca: readFileSync(pki.ca), cert: readFileSync(cert), key: readFileSync(key) };
    expect(await connackCode(url(agent), device)).toBe(5);
    const tls = { port: 0, host: '127.0.0.1', cert: pki.serverCert, key: pki.serverKey, ca: pki.ca };
    const open = await startAgent(
      {
        broker: {
          mqtts: { ...tls, clientCertificates: 'required', useIdentityAsUsername: true, certificateOnlyUsers: true },
          allowAnonymous: false,
        },
      },
      tempDir(),
    );
    try {
      expect(await connackCode(url(open), device)).toBe(0);
    } finally {
      await open.stop();
      cleanup(open.dir);
    }
  });

  it('refuses clients without a certificate when certificates are required', async () => {
    await expect(connect(url(strict), { ca: readFileSync(pki.ca) })).rejects.toThrow();
    const { cert, key } = pki.clientCert('pi-9');
    const ok = await connect(url(strict), { ca: readFileSync(pki.ca), cert: readFileSync(cert), key: readFileSync(key) });
    await ok.endAsync();
  });
});

describe('HTTPS and MQTT over secure WebSocket', () => {
  const dir = tempDir();
  let agent: InProcessAgent;
  let pki: Pki;
  beforeAll(async () => {
    pki = makePki(dir);
    agent = await startAgent({ web: { https: { host: '127.0.0.1', port: 0, cert: pki.serverCert, key: pki.serverKey } } }, dir);
  });
  afterAll(async () => {
    await agent.stop();
    cleanup(dir);
  });

  it('serves wss on the HTTPS listener', async () => {
    expect(agent.runtime.listeners.wss).toBe(agent.runtime.listeners.https);
    const client = await connect(`wss://localhost:${agent.port('wss')}/mqtt`, { ca: readFileSync(pki.ca) });
    await client.subscribeAsync('secure/#', { qos: 1 });
    const got = collect(client, 1);
    await client.publishAsync('secure/ws', 'hello', { qos: 1 });
    expect(await got).toEqual([{ topic: 'secure/ws', payload: 'hello', retain: false }]);
    await client.endAsync();
  });
});

describe('MQTT over WebSocket', () => {
  let agent: InProcessAgent;
  beforeAll(async () => {
    agent = await startAgent({ broker: { ws: { path: '/mqtt' } } });
  });
  afterAll(async () => {
    await agent.stop();
    cleanup(agent.dir);
  });

  it('carries MQTT on the web listener, next to the health endpoint', async () => {
    expect(agent.runtime.listeners.ws).toBe(agent.runtime.listeners.http);
    const wsUrl = `ws://127.0.0.1:${agent.port('ws')}/mqtt`;
    const sub = await connect(wsUrl);
    await sub.subscribeAsync('ws/#', { qos: 1 });
    const got = collect(sub, 1);
    const tcp = await connect(agent.mqttUrl);
    await tcp.publishAsync('ws/hello', 'over tcp', { qos: 1 });
    expect(await got).toEqual([{ topic: 'ws/hello', payload: 'over tcp', retain: false }]);
    const health = await fetch(`http://127.0.0.1:${agent.port('http')}/health/live`);
    expect(await health.json()).toMatchObject({ status: 'ok' });
    await Promise.all([sub.endAsync(), tcp.endAsync()]);
  });

  it('has its own cap (broker.ws.maxConnections): past it, 503 with Retry-After, and the web API still answers', async () => {
    const capped = await startAgent({ broker: { ws: { maxConnections: 2 } } });
    try {
      const wsUrl = `ws://127.0.0.1:${capped.port('ws')}/mqtt`;
      const two = await Promise.all([connect(wsUrl), connect(wsUrl)]); // the control: up to the cap they connect
      const third = await new Promise<{ status?: number; retryAfter?: string | string[] }>((resolve) => {
        const ws = new WebSocket(wsUrl, 'mqtt');
        ws.once('unexpected-response', (req, res) => {
          req.destroy();
          resolve({ status: res.statusCode, retryAfter: res.headers['retry-after'] });
        });
        ws.once('open', () => {
          ws.close();
          resolve({});
        });
        ws.once('error', () => {});
      });
      expect(third).toEqual({ status: 503, retryAfter: '10' });
      expect((await fetch(`http://127.0.0.1:${capped.port('http')}/health/live`)).status).toBe(200);
      await two[0].endAsync();
      const again = await until(() => connect(wsUrl).catch(() => undefined), 5000, 'a freed slot'); // a slot freed is a slot again
      await Promise.all([two[1].endAsync(), again.endAsync()]);
    } finally {
      await capped.stop();
      cleanup(capped.dir);
    }
  });
});
