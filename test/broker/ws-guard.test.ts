// MQTT over WebSocket: every packet is checked whatever the framing; Origin and Host are checked.
import { hostname } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { cleanup, startAgent, type InProcessAgent } from '../helpers/agent.js';
import { CONNACK_OK, connect, publish } from '../helpers/raw.js';

/** Send each buffer as its own WebSocket message; everything the server sent, and whether it closed. */
function wsExchange(
  url: string,
  messages: Buffer[],
  opts: { origin?: string; host?: string; ms?: number } = {},
): Promise<{ received: Buffer; closed: boolean; status?: number }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, 'mqtt', {
      ...(opts.origin ? { origin: opts.origin } : {}),
      ...(opts.host ? { headers: { host: opts.host } } : {}),
    });
    const chunks: Buffer[] = [];
    let closed = false;
    let status: number | undefined;
    const finish = () => {
      clearTimeout(timer);
      ws.terminate();
      resolve({ received: Buffer.concat(chunks), closed, status });
    };
    const timer = setTimeout(finish, opts.ms ?? 1000);
    ws.on('unexpected-response', (_req, res) => {
      status = res.statusCode;
      closed = true;
      finish();
    });
    ws.on('open', async () => {
      for (const m of messages) {
        ws.send(m);
        await new Promise((r) => setTimeout(r, 30));
      }
    });
    ws.on('message', (d: Buffer) => chunks.push(d));
    ws.on('close', () => {
      closed = true;
      finish();
    });
    ws.on('error', () => {});
  });
}

describe('MQTT over WebSocket: checks and Origin', () => {
  let agent: InProcessAgent;
  let url: string;
  beforeAll(async () => {
    agent = await startAgent({ store: { gatherMs: 50 } });
    url = `ws://127.0.0.1:${agent.port('http')}/mqtt`;
  });
  afterAll(async () => {
    await agent.stop();
    cleanup(agent.dir);
  });

  it('checks a PUBLISH split across WebSocket messages like any other (NUL and invalid UTF-8 in a 424-byte topic)', async () => {
    const topic = Buffer.concat([Buffer.from('a'.repeat(200)), Buffer.from([0x00, 0xc3, 0x28]), Buffer.from('b'.repeat(221))]);
    const bad = publish(topic, '{"v":1}', 1, 7);
    const r = await wsExchange(url, [connect({ clientId: 'ws-split' }), bad.subarray(0, 50), bad.subarray(50)]);
    expect(r.closed).toBe(true);
    expect(r.received).toEqual(CONNACK_OK); // no PUBACK
    // The same topic cut at any point is refused; a good one split the same way is taken (positive control).
    for (const cut of [1, 2, 3, 5, 203, 300]) {
      const again = await wsExchange(url, [connect({ clientId: `ws-cut-${cut}` }), bad.subarray(0, cut), bad.subarray(cut)]);
      expect({ cut, closed: again.closed, received: again.received }).toEqual({ cut, closed: true, received: CONNACK_OK });
    }
    const good = publish('ws/split/ok', '{"v":2}', 1, 8);
    const ok = await wsExchange(url, [connect({ clientId: 'ws-good' }), good.subarray(0, 5), good.subarray(5)]);
    expect(ok.received).toEqual(Buffer.concat([CONNACK_OK, Buffer.from([0x40, 0x02, 0x00, 0x08])]));
    expect(await agent.runtime.store!.caughtUp(agent.runtime.log.lastSeq)).toBe(true);
    expect((await agent.runtime.store!.target.query({})).map((r) => r.topic)).toEqual(['ws/split/ok']);
  });

  it('checks packets in one WebSocket message that holds many of them, past the first 64 KiB', async () => {
    const padding = Array.from({ length: 400 }, (_, i) => publish(`ws/pad/${i}`, 'x'.repeat(200)));
    const bad = publish(Buffer.from([0x61, 0x00, 0x62]), 'x', 1, 9);
    const malformed = () => agent.runtime.broker.stats().malformedPackets;
    const before = malformed();
    const r = await wsExchange(url, [connect({ clientId: 'ws-many' }), Buffer.concat([...padding, bad])]);
    expect(r.closed).toBe(true);
    expect(malformed()).toBe(before + 1); // our check found it (Aedes itself lets U+0000 through)
    // The same after a packet held over from the message before (the message completes it, then goes on).
    const head = publish('ws/held', 'y'.repeat(100), 1, 10);
    const held = await wsExchange(url, [
      connect({ clientId: 'ws-held' }),
      head.subarray(0, 6),
      Buffer.concat([head.subarray(6), ...padding, bad]),
    ]);
    expect(held.closed).toBe(true);
    expect(malformed()).toBe(before + 2);
    // A held-over packet with a 200 KB payload, completed by a message that goes on past it.
    const big = publish('ws/big', 'z'.repeat(200_000), 1, 11);
    const long = await wsExchange(url, [connect({ clientId: 'ws-big' }), big.subarray(0, 3), Buffer.concat([big.subarray(3), bad])]);
    expect(long.closed).toBe(true);
    expect(malformed()).toBe(before + 3);
  });

  it('refuses a foreign Origin (403); takes no Origin and its own', async () => {
    expect((await wsExchange(url, [connect({ clientId: 'ws-evil' })], { origin: 'http://evil.example' })).status).toBe(403);
    const own = await wsExchange(url, [connect({ clientId: 'ws-own' })], { origin: `http://127.0.0.1:${agent.port('http')}` });
    expect(own.received).toEqual(CONNACK_OK);
    const none = await wsExchange(url, [connect({ clientId: 'ws-none' })]);
    expect(none.received).toEqual(CONNACK_OK);
  });

  it('refuses DNS rebinding: a page on a foreign name whose Origin matches its Host is not upgraded; the own names are', async () => {
    const p = agent.port('http');
    const rebound = await wsExchange(url, [connect({ clientId: 'ws-rebound' })], {
      host: `evil.example:${p}`,
      origin: `http://evil.example:${p}`,
    });
    expect(rebound.status).toBe(403);
    expect(rebound.received.length).toBe(0);
    for (const name of ['localhost', hostname()]) {
      const own = await wsExchange(url, [connect({ clientId: `ws-${name}` })], { host: `${name}:${p}`, origin: `http://${name}:${p}` });
      expect(own.received).toEqual(CONNACK_OK);
    }
  });
});
