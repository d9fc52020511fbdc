// The worst of what one viewer and one address on the LAN can do, all at once, while a sensor
// publishes QoS 1 readings: paused exports, a 100-alias GraphQL query, aggregate scans, 300
// unfinished HTTP requests from one address, 64 /ws of one user, payloads for a backtracking
// pattern. Every acknowledged reading is stored, nothing crashes, /health/live keeps answering.
import { request } from 'node:http';
import { connect as connectTcp, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { cleanup, spawnAgent, tempDir, writeConfig, type ChildAgent } from '../helpers/agent.js';
import { connect } from '../helpers/mqtt.js';
import { TrackingPublisher } from '../helpers/tracking-publisher.js';
import { addUser } from '../helpers/users.js';
import { authHeader } from '../helpers/web.js';

const STORED = 60_000;

/** A GET from a loopback address of the watcher's own (the abuse holds 127.0.0.1's share of connections). */
function get(base: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const url = new URL(path, base);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: url.hostname, port: url.port, path: url.pathname + url.search, headers, localAddress: '127.0.61.1', timeout: 5000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer in 5 s')));
    req.on('error', reject);
    req.end();
  });
}

describe('abuse, all at once', () => {
  const dir = tempDir();
  let agent: ChildAgent;
  let base: string;
  const mallory = authHeader({ basic: ['mallory', 'mallory-pass'] });

  beforeAll(async () => {
    const config = writeConfig(dir, {
      ingest: { schemas: [{ name: 'evil', topics: ['evil/#'], fields: { s: { type: 'string', pattern: '^(a+)+$' } } }] },
    });
    await addUser(config, 'mallory', 'mallory-pass', ['operator']);
    agent = await spawnAgent(['--config', config]);
    base = `http://${agent.listeners.http}`;
    // A store worth scanning: 60,000 readings through the HTTP ingest.
    for (let first = 0; first < STORED; first += 5000) {
      const readings = Array.from({ length: 5000 }, (_, i) => ({
        topic: `old/${(first + i) % 8}`,
        payload: { t: (first + i) % 100, pad: 'x'.repeat(40) },
      }));
      const res = await fetch(`${base}/api/data`, {
        method: 'POST',
        headers: { ...mallory, 'content-type': 'application/json' },
        body: JSON.stringify({ readings }),
      });
      expect(res.status).toBe(201);
    }
  }, 120_000);
  afterAll(async () => {
    agent.proc.kill('SIGTERM');
    await agent.exited;
    cleanup(dir);
  });

  it('every acknowledged reading is stored, /health/live answers throughout, the agent stays up', async () => {
    const sensor = new TrackingPublisher('sensor', 'load/a', 20);
    sensor.start(Number(agent.listeners.mqtt.split(':').at(-1)));
    let liveAsked = 0;
    const liveFailures: string[] = [];
    let watching = true;
    const watch = (async () => {
      while (watching) {
        liveAsked++;
        const res = await get(base, '/health/live').catch((err: Error) => err);
        if (res instanceof Error || res.status !== 200) liveFailures.push(res instanceof Error ? res.message : String(res.status));
        await new Promise((r) => setTimeout(r, 200));
      }
    })();

    const aborts: AbortController[] = [];
    const paused = Array.from({ length: 40 }, () => {
      const c = new AbortController();
      aborts.push(c);
      return fetch(`${base}/api/export?format=json`, { headers: mallory, signal: c.signal }).then(
        (r) => r.status,
        () => 0,
      );
    });
    // All from 127.0.0.1: past its 32 connections some are refused outright (status 0 here).
    const gql = (query: string) =>
      fetch(`${base}/graphql`, {
        method: 'POST',
        headers: { ...mallory, 'content-type': 'application/json' },
        body: JSON.stringify({ query }),
      }).then(
        (r) => r.status,
        () => 0,
      );
    const aliases = gql(
      `{ ${Array.from({ length: 100 }, (_, i) => `r${i}: readings(limit: 1, where: ["t=-999"]) { readings { seq } }`).join(' ')} }`,
    );
    const aggregates = Array.from({ length: 10 }, () =>
      fetch(`${base}/api/data/aggregate?topic=%23&bucket=2m`, { headers: mallory }).then(
        (r) => r.status,
        () => 0,
      ),
    );
    const [host, port] = [agent.listeners.http.split(':')[0], Number(agent.listeners.http.split(':').at(-1))];
    const unfinished: Socket[] = Array.from({ length: 300 }, () => {
      const s = connectTcp({ host, port, localAddress: '127.0.60.1' });
      s.on('error', () => {});
      s.on('connect', () => s.write('GET /health/live HTTP/1.1\r\nHost: x\r\nX-Never: '));
      return s;
    });
    const sockets = Array.from({ length: 64 }, () => {
      const ws = new WebSocket(`ws://${agent.listeners.http}/ws`, { headers: mallory, localAddress: '127.0.62.1' });
      ws.on('error', () => {});
      return ws;
    });
    const evil = await connect(`mqtt://${agent.listeners.mqtt}`);
    for (let i = 0; i < 20; i++) await evil.publishAsync('evil/x', JSON.stringify({ s: `${'a'.repeat(5000 + i)}!` }), { qos: 1 });
    await evil.endAsync();

    // The abuse meets its limits.
    expect([400, 0]).toContain(await aliases); // the cost of 100 scanning aliases (or 127.0.0.1's share was full)
    expect((await Promise.all(aggregates)).every((s) => [0, 200, 400, 429, 503].includes(s))).toBe(true);
    await new Promise((r) => setTimeout(r, 3000)); // the sensor goes on meanwhile
    const exportStatuses = await Promise.all(paused);
    expect(exportStatuses.filter((s) => s === 200).length).toBeLessThanOrEqual(2); // exportsPerUser
    expect(exportStatuses.filter((s) => s === 429 || s === 0).length).toBeGreaterThanOrEqual(38);
    const openWs = sockets.filter((w) => w.readyState === WebSocket.OPEN).length;
    expect(openWs).toBeLessThanOrEqual(8); // liveClientsPerUser
    expect(unfinished.filter((s) => !s.destroyed && s.readyState === 'open').length).toBeLessThanOrEqual(32); // maxConnectionsPerAddress

    sensor.stop();
    aborts.forEach((c) => c.abort());
    sockets.forEach((w) => w.terminate());
    unfinished.forEach((s) => s.destroy());
    watching = false;
    await watch;

    expect(agent.proc.exitCode).toBeNull();
    expect(liveFailures).toEqual([]);
    expect(liveAsked).toBeGreaterThan(10); // the control: it was asked all along
    expect(sensor.acked.size).toBeGreaterThan(100);
    // Every acknowledged reading reaches the store (the store catches up).
    const want = [...sensor.acked].sort();
    const storedKeys = async () => {
      const keys = new Set<string>();
      for (let next: string | null = ''; next !== null;) {
        const page = JSON.parse(
          (await get(base, `/api/data?topic=load/a&limit=10000${next ? `&cursor=${encodeURIComponent(next)}` : ''}`, mallory)).body,
        ) as { readings: { payload: { key: string } }[]; next: string | null };
        for (const r of page.readings) keys.add(r.payload.key);
        next = page.next;
      }
      return keys;
    };
    let stored = await storedKeys();
    for (let i = 0; i < 50 && !want.every((k) => stored.has(k)); i++) {
      await new Promise((r) => setTimeout(r, 200));
      stored = await storedKeys();
    }
    expect(want.filter((k) => !stored.has(k))).toEqual([]);
    // The backtracking pattern's payloads were refused by RE2 (dead letters), in time.
    const dead = JSON.parse((await get(base, '/api/dead-letters?limit=100', mallory)).body) as { deadLetters: { topic: string }[] };
    expect(dead.deadLetters.filter((d) => d.topic === 'evil/x')).toHaveLength(20);
  }, 180_000);
});
