// Live readings: WebSocket /ws with subscribe/unsubscribe and field lists, heartbeats, credentials,
// the slow-client close; Server-Sent Events /api/stream.
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { cleanup, startAgent, type InProcessAgent } from '../helpers/agent.js';
import { connect } from '../helpers/mqtt.js';
import { adminClient, authHeader, type WebClient } from '../helpers/web.js';

type Message = { type: string; reading?: { topic: string; seq: number; payload: Record<string, unknown> }; [k: string]: unknown };

/** A WebSocket client that keeps every message, and waits for the ones a test needs. */
class LiveSocket {
  readonly messages: Message[] = [];
  private waiters: (() => void)[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(
    readonly ws: WebSocket,
    /** The TCP socket under it (from the upgrade's response): pausing it stops reading. */
    readonly socket: Socket,
  ) {
    ws.on('message', (data) => {
      this.messages.push(JSON.parse(String(data)) as Message);
      this.waiters.splice(0).forEach((w) => w());
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })));
  }

  static open(url: string, headers: Record<string, string>): Promise<LiveSocket> {
    const ws = new WebSocket(url, { headers });
    let socket: Socket;
    ws.once('upgrade', (res) => (socket = res.socket as Socket));
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new LiveSocket(ws, socket)));
      ws.once('unexpected-response', (req, res) => {
        req.destroy();
        reject(new Error(`HTTP ${res.statusCode}`));
      });
      ws.once('error', reject);
    });
  }

  send(m: unknown): void {
    this.ws.send(JSON.stringify(m));
  }

  readings(): NonNullable<Message['reading']>[] {
    return this.messages.filter((m) => m.type === 'reading').map((m) => m.reading!);
  }

  async until(test: (messages: Message[]) => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!test(this.messages)) {
      if (Date.now() > deadline) throw new Error(`timed out; messages: ${JSON.stringify(this.messages).slice(0, 500)}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 100);
      });
    }
  }
}

describe('live readings', () => {
  let agent: InProcessAgent;
  let api: WebClient;
  let wsUrl: string;

  beforeAll(async () => {
    agent = await startAgent({ web: { limits: { heartbeatSec: 1 } } });
    api = adminClient(agent);
    wsUrl = `ws://127.0.0.1:${agent.port('http')}/ws`;
  });
  afterAll(async () => {
    await agent.stop();
    cleanup(agent.dir);
  });

  it('sends only the readings a client subscribed to, with the fields it asked for; unsubscribe stops them', async () => {
    const live = await LiveSocket.open(wsUrl, authHeader(api.creds));
    live.send({ type: 'subscribe', topics: ['plant/+/temp'], fields: ['t'] });
    await live.until((m) => m.some((x) => x.type === 'subscribed'));
    const mqtt = await connect(agent.mqttUrl);
    await mqtt.publishAsync('plant/a/temp', JSON.stringify({ t: 1, rh: 50 }), { qos: 1 });
    await mqtt.publishAsync('plant/a/humidity', JSON.stringify({ rh: 51 }), { qos: 1 });
    await mqtt.publishAsync('other/b/temp', JSON.stringify({ t: 2 }), { qos: 1 });
    await mqtt.publishAsync('plant/b/temp', JSON.stringify({ t: 3, rh: 52 }), { qos: 1 });
    await live.until((m) => m.filter((x) => x.type === 'reading').length >= 2);
    expect(live.readings().map((r) => [r.topic, r.payload])).toEqual([
      ['plant/a/temp', { t: 1 }],
      ['plant/b/temp', { t: 3 }],
    ]);
    // The positive control for what was not sent: a subscription to # gets all of them.
    const all = await LiveSocket.open(wsUrl, authHeader(api.creds));
    all.send({ type: 'subscribe', topics: ['#'] });
    await all.until((m) => m.some((x) => x.type === 'subscribed'));
    live.send({ type: 'unsubscribe', topics: ['plant/+/temp'] });
    await live.until((m) => m.some((x) => x.type === 'unsubscribed'));
    await mqtt.publishAsync('plant/c/temp', JSON.stringify({ t: 4 }), { qos: 1 });
    await mqtt.publishAsync('other/d', JSON.stringify({ t: 5 }), { qos: 1 });
    await all.until((m) => m.filter((x) => x.type === 'reading').length >= 2);
    expect(all.readings().map((r) => r.topic)).toEqual(['plant/c/temp', 'other/d']);
    expect(live.readings()).toHaveLength(2);
    live.send({ type: 'subscribe', topics: ['a/#/b'] });
    await live.until((m) => m.some((x) => x.type === 'error'));
    expect(live.messages.find((x) => x.type === 'error')!.message).toMatch(/not a valid topic filter/);
    await mqtt.endAsync();
    live.ws.close();
    all.ws.close();
  });

  it('sends heartbeats, and needs credentials (a token in the query works for browsers)', async () => {
    await expect(LiveSocket.open(wsUrl, {})).rejects.toThrow(/HTTP 401/);
    const login = await api
      .as(undefined)
      .post('/api/auth/login', { username: 'admin', password: (api.creds as { basic: string[] }).basic[1] });
    const live = await LiveSocket.open(`${wsUrl}?access_token=${login.body.token}`, {});
    await live.until((m) => m.some((x) => x.type === 'heartbeat'), 5000);
    live.ws.close();
  });

  it('streams Server-Sent Events, with credentials only', async () => {
    expect((await fetch(`${api.base}/api/stream`)).status).toBe(401);
    const controller = new AbortController();
    const res = await fetch(`${api.base}/api/stream?topic=sse/%23&fields=v`, { headers: authHeader(api.creds), signal: controller.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    const reader = res.body!.getReader();
    let text = '';
    const read = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        text += Buffer.from(value).toString();
        if ((text.match(/event: reading/g) ?? []).length >= 2) return;
      }
    })();
    await new Promise((r) => setTimeout(r, 200));
    const mqtt = await connect(agent.mqttUrl);
    await mqtt.publishAsync('sse/a', JSON.stringify({ v: 1, w: 2 }), { qos: 1 });
    await mqtt.publishAsync('nosse/a', JSON.stringify({ v: 9 }), { qos: 1 });
    await mqtt.publishAsync('sse/b', JSON.stringify({ v: 3 }), { qos: 1 });
    await read;
    controller.abort();
    const events = text
      .split('\n\n')
      .filter((e) => e.startsWith('event: reading'))
      .map((e) => JSON.parse(e.split('data: ')[1]) as { topic: string; payload: unknown });
    expect(events.map((e) => [e.topic, e.payload])).toEqual([
      ['sse/a', { v: 1 }],
      ['sse/b', { v: 3 }],
    ]);
    await mqtt.endAsync();
  });

  it('caps live clients per user (web.limits.liveClientsPerUser, 8): the ninth of one viewer is refused (1013; 429 with Retry-After), another user gets in', async () => {
    const mine = await Promise.all(Array.from({ length: 8 }, () => LiveSocket.open(wsUrl, authHeader(api.creds))));
    const ninth = await LiveSocket.open(wsUrl, authHeader(api.creds));
    expect(await ninth.closed).toEqual({ code: 1013, reason: 'too many live clients of yours' });
    const sse = await fetch(`${api.base}/api/stream?topic=a`, { headers: authHeader(api.creds) });
    expect(sse.status).toBe(429);
    expect(sse.headers.get('retry-after')).toBe('10');
    expect(await sse.json()).toMatchObject({ message: 'too many live clients of yours' });
    // Another user is not shut out by this one (before: 64 from one viewer filled every slot).
    expect((await api.put('/api/users/vera', { password: 'vera-password-1', roles: ['viewer'] })).status).toBeLessThan(300);
    const vera = await LiveSocket.open(wsUrl, authHeader({ basic: ['vera', 'vera-password-1'] }));
    vera.send({ type: 'ping' });
    await vera.until((m) => m.some((x) => x.type === 'pong'));
    // One of the first eight gone: a slot of one's own again.
    mine[0].ws.close();
    await mine[0].closed;
    const again = await LiveSocket.open(wsUrl, authHeader(api.creds));
    again.send({ type: 'ping' });
    await again.until((m) => m.some((x) => x.type === 'pong'));
    for (const l of [...mine, vera, again]) l.ws.close();
  });

  it('closes a client that does not keep up with 1008, and keeps serving the others', async () => {
    // Heartbeats far apart: a paused client answers no ping, and that would drop it first.
    const agent = await startAgent({ web: { limits: { heartbeatSec: 600, liveBufferBytes: 16384 } } });
    const api = adminClient(agent);
    const wsUrl = `ws://127.0.0.1:${agent.port('http')}/ws`;
    try {
      const slow = await LiveSocket.open(wsUrl, authHeader(api.creds));
      slow.send({ type: 'subscribe', topics: ['flood/#'] });
      await slow.until((m) => m.some((x) => x.type === 'subscribed'));
      slow.socket.pause(); // stops reading: the server's buffer fills
      const fast = await LiveSocket.open(wsUrl, authHeader(api.creds));
      fast.send({ type: 'subscribe', topics: ['flood/#'] });
      await fast.until((m) => m.some((x) => x.type === 'subscribed'));
      const mqtt = await connect(agent.mqttUrl);
      const big = 'x'.repeat(8000);
      const closedTooSlow = async () => ((await api.get('/api/stats')).body as { live: { closedTooSlow: number } }).live.closedTooSlow;
      // 8 KB readings until the server gives up on the client that reads nothing (socket buffers on
      // loopback hold a few MB first); the cap keeps a broken agent from looping for ever.
      let sent = 0;
      while (sent < 3000 && (await closedTooSlow()) === 0) {
        for (const end = sent + 50; sent < end; sent++)
          await mqtt.publishAsync(`flood/${sent % 4}`, JSON.stringify({ n: sent, big }), { qos: 1 });
      }
      expect(await closedTooSlow()).toBe(1);
      // Reading again, the client finds what was sent before the close, then the close frame.
      slow.socket.resume();
      const close = await slow.closed;
      expect(close.code).toBe(1008);
      expect(close.reason).toMatch(/too slow/);
      expect(slow.readings().length).toBeLessThan(sent);
      await fast.until((m) => m.filter((x) => x.type === 'reading').length >= sent, 20_000);
      expect(fast.readings().map((r) => r.payload.n)).toEqual(Array.from({ length: sent }, (_, i) => i));
      await mqtt.endAsync();
      fast.ws.close();
    } finally {
      await agent.stop();
      cleanup(agent.dir);
    }
  });
});
