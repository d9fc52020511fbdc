// Chaos: random and mutated MQTT packets (built with mqtt-packet, then cut, flipped, lengthened),
// each on its own connection from an address of 127.0.0.0/8, while a sensor publishes beside them.
// Every packet mqtt-packet's own parser refuses gets its connection closed; the agent stays up; the
// sensor is never disconnected and every one of its readings is acknowledged and stored.
import net from 'node:net';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, startAgent, type InProcessAgent } from '../helpers/agent.js';
import { connect } from '../helpers/mqtt.js';
import { chaos, record, scale, type Chaos } from './chaos.js';

const PACKETS = scale(10_000, 50_000);
const AT_ONCE = 64;
/** A connection that neither closes nor answers for this long is left (its packet may be incomplete). */
const IDLE_MS = 150;
/** How long a connection whose packet the parser refuses is given to be closed (a loaded machine is slow). */
const CLOSE_MS = 10_000;

/** A random string: ASCII, wildcards, separators, NUL and multi-byte characters. */
function text(r: Chaos, max = 24): string {
  const alphabet = ['a', 'b', 'z', '/', '#', '+', '$', ' ', '\u0000', 'é', '😀', '\uFFFF', '0', '.'];
  return Array.from({ length: r.int(0, max) }, () => r.pick(alphabet)).join('');
}

/** A packet of a random type with random fields, as mqtt-packet writes it. */
function randomPacket(r: Chaos, version: 4 | 5): Buffer {
  const id = r.int(1, 65535);
  const properties = version === 5 && r.next() < 0.5 ? { userProperties: { [text(r, 5) || 'k']: text(r, 5) } } : undefined;
  const packets: (() => Packet)[] = [
    () => ({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: version,
      clientId: text(r),
      clean: r.next() < 0.5,
      keepalive: r.int(0, 600),
      ...(r.next() < 0.3 ? { username: text(r, 8), password: Buffer.from(text(r, 8)) } : {}),
      ...(r.next() < 0.2
        ? { will: { topic: text(r), payload: Buffer.from(text(r)), qos: r.pick([0, 1, 2] as const), retain: r.next() < 0.5 } }
        : {}),
    }),
    () => ({
      cmd: 'publish',
      topic: text(r),
      payload: Buffer.from(r.next() < 0.5 ? JSON.stringify({ v: r.next() }) : text(r, 64)),
      qos: r.pick([0, 1, 2] as const),
      retain: r.next() < 0.2,
      dup: r.next() < 0.1,
      messageId: id,
      properties,
    }),
    () => ({ cmd: 'subscribe', messageId: id, subscriptions: [{ topic: text(r), qos: r.pick([0, 1, 2] as const) }], properties }),
    () => ({ cmd: 'unsubscribe', messageId: id, unsubscriptions: [text(r)] }),
    () => ({ cmd: 'puback', messageId: id }),
    () => ({ cmd: 'pubrec', messageId: id }),
    () => ({ cmd: 'pubrel', messageId: id }),
    () => ({ cmd: 'pingreq' }),
    () => ({ cmd: 'disconnect' }),
  ];
  try {
    return mqttPacket.generate(r.pick(packets)(), { protocolVersion: version });
  } catch {
    return Buffer.from([0xf0, 0x00]); // a field mqtt-packet will not write: type 15 (AUTH) with nothing in it
  }
}

/** The packet cut, flipped, lengthened, or with its first byte or length changed (or left as it is). */
function mutate(r: Chaos, p: Buffer): Buffer {
  const b = Buffer.from(p);
  switch (r.int(0, 5)) {
    case 0:
      for (let i = r.int(1, 3); i > 0 && b.length; i--) b[r.int(0, b.length - 1)] ^= 1 << r.int(0, 7);
      return b;
    case 1:
      return b.subarray(0, r.int(0, Math.max(0, b.length - 1)));
    case 2:
      return Buffer.concat([b, Buffer.from(Array.from({ length: r.int(1, 16) }, () => r.int(0, 255)))]);
    case 3:
      b[0] = r.int(0, 255);
      return b;
    case 4:
      if (b.length > 1) b[1] = r.int(0, 255);
      return b;
    default:
      return b;
  }
}

/** Whether mqtt-packet's parser refuses the bytes (a complete but malformed packet). */
function refused(bytes: Buffer, version: 4 | 5): boolean {
  const parser = mqttPacket.parser({ protocolVersion: version });
  let error = false;
  parser.on('error', () => (error = true));
  parser.on('packet', () => {});
  parser.parse(bytes);
  return error;
}

/** Send the bytes from `address`; resolve whether the agent closed the connection (false: idle for `patienceMs`, left open). */
function send(port: number, address: string, bytes: Buffer, patienceMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress: address });
    let idle: NodeJS.Timeout | undefined;
    const leave = () => {
      socket.destroy();
      resolve(false);
    };
    socket.on('connect', () => {
      socket.write(bytes);
      idle = setTimeout(leave, patienceMs);
    });
    socket.on('data', () => {
      clearTimeout(idle);
      idle = setTimeout(leave, patienceMs);
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(idle);
      resolve(true);
    });
  });
}

describe('chaos: malformed MQTT packets', () => {
  let agent: InProcessAgent;
  beforeAll(async () => {
    agent = await startAgent();
  });
  afterAll(async () => {
    await agent.stop();
    cleanup(agent.dir);
  });

  it(
    `closes the connection of each of ${PACKETS.toLocaleString('en-US')} random packets it cannot read, and no other`,
    async () => {
      const r = chaos('malformed');
      const started = performance.now();
      const port = agent.port('mqtt');
      // The sensor beside the abuse: a QoS 1 reading every 20 ms.
      const sensor = await connect(agent.mqttUrl, { clientId: 'steady-sensor' });
      let closes = 0;
      sensor.on('close', () => closes++);
      let published = 0;
      const pending: Promise<unknown>[] = [];
      const ticker = setInterval(() => pending.push(sensor.publishAsync('steady/t', JSON.stringify({ v: published++ }), { qos: 1 })), 20);

      const cases = Array.from({ length: PACKETS }, () => {
        const version = r.pick([4, 5] as const);
        const afterConnect = r.next() < 0.5;
        const connectFirst = mqttPacket.generate(
          { cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clientId: `c${r.int(0, 1e9)}`, clean: true, keepalive: 30 },
          { protocolVersion: version },
        );
        const body = mutate(r, randomPacket(r, version));
        const bytes = afterConnect ? Buffer.concat([connectFirst, body]) : body;
        return { bytes, malformed: refused(bytes, version) };
      });
      const left: number[] = [];
      let next = 0;
      await Promise.all(
        Array.from({ length: AT_ONCE }, async (_, lane) => {
          const address = `127.0.${100 + (lane >> 6)}.${(lane % 64) + 1}`;
          for (let i = next++; i < cases.length; i = next++) {
            const closed = await send(port, address, cases[i].bytes, cases[i].malformed ? CLOSE_MS : IDLE_MS);
            if (cases[i].malformed && !closed) left.push(i);
          }
        }),
      );
      clearInterval(ticker);
      await Promise.all(pending);
      const malformed = cases.filter((c) => c.malformed).length;
      const live = await fetch(`http://127.0.0.1:${agent.port('http')}/health/live`);
      expect(live.status).toBe(200);
      expect(
        left.slice(0, 5).map((i) => cases[i].bytes.toString('hex')),
        `malformed packets whose connection stayed open ${r.replay}`,
      ).toEqual([]);
      expect(closes, `the sensor beside them was disconnected ${r.replay}`).toBe(0);
      expect(await agent.runtime.store!.caughtUp(agent.runtime.log.lastSeq)).toBe(true);
      const stored = await agent.runtime.store!.target.query({ topic: 'steady/t', limit: 100_000 });
      expect(stored.length, `the sensor's readings stored ${r.replay}`).toBe(published);
      // The control: the mutations did make packets the parser refuses, and the broker counted them.
      expect(malformed).toBeGreaterThan(PACKETS / 5);
      expect(agent.runtime.broker.stats().malformedPackets).toBeGreaterThan(0);
      const disconnections = closes;
      await sensor.endAsync();
      record({
        scenario: 'malformed',
        title: 'random and mutated MQTT packets (mqtt-packet, MQTT 3.1.1 and 5), each on its own connection, beside a QoS 1 sensor',
        seed: r.seed,
        full: PACKETS > 10_000,
        seconds: Math.round((performance.now() - started) / 1000),
        did: {
          packets: PACKETS,
          'refused by mqtt-packet': malformed,
          'after a valid CONNECT': 'half of them',
          'connections at once': AT_ONCE,
        },
        found: {
          'refused packets whose connection stayed open': left.length,
          'malformed packets the broker counted': agent.runtime.broker.stats().malformedPackets,
          'sensor disconnections': disconnections,
          'sensor readings published': published,
          'sensor readings stored': stored.length,
        },
      });
    },
    scale(300_000, 1_200_000),
  );
});
