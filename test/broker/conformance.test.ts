import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import { cleanup, startAgent, type InProcessAgent } from '../helpers/agent.js';
import { collect, connect as mqttConnect } from '../helpers/mqtt.js';
import { CONNACK_OK, connect, exchange, packet, publish, str, subscribe } from '../helpers/raw.js';

const BAD_UTF8 = Buffer.from([0x61, 0xc3, 0x28]); // "a" + a broken two-byte sequence
const NUL = Buffer.from([0x61, 0x00, 0x62]);

describe('MQTT 3.1.1 rules Aedes does not enforce', () => {
  let agent: InProcessAgent;
  let bystander: MqttClient;
  let observer: MqttClient;
  const port = () => agent.port('mqtt');

  beforeAll(async () => {
    agent = await startAgent();
    bystander = await mqttConnect(agent.mqttUrl, { clientId: 'bystander' });
    observer = await mqttConnect(agent.mqttUrl, { clientId: 'observer' });
    await observer.subscribeAsync('alive/#');
  });
  afterAll(async () => {
    await Promise.all([bystander.endAsync(), observer.endAsync()]);
    await agent.stop();
    cleanup(agent.dir);
  });

  it('a well-formed exchange stays open (the harness can tell open from closed)', async () => {
    const r = await exchange(port(), [connect(), publish('ok/topic', 'x'), packet(0xc0)], 800);
    expect(r.closed).toBe(false);
    expect(r.received.subarray(0, 4)).toEqual(CONNACK_OK);
    expect(r.received.subarray(4)).toEqual(Buffer.from([0xd0, 0x00])); // PINGRESP
  });

  it('answers a zero-length client id with CleanSession=0 by CONNACK 0x02 and closes [MQTT-3.1.3-8]', async () => {
    const r = await exchange(port(), [connect({ clientId: '', clean: false })]);
    expect(r.received).toEqual(Buffer.from([0x20, 0x02, 0x00, 0x02]));
    expect(r.closed).toBe(true);
    const ok = await exchange(port(), [connect({ clientId: '', clean: true })], 500);
    expect(ok.received).toEqual(CONNACK_OK);
  });

  const malformed: [string, Buffer[], number?][] = [
    ['invalid UTF-8 in the client id', [connect({ clientId: BAD_UTF8 })]],
    ['U+0000 in the client id', [connect({ clientId: NUL })]],
    ['invalid UTF-8 in the will topic', [connect({ will: { topic: BAD_UTF8, payload: 'bye' } })]],
    ['invalid UTF-8 in the user name', [connect({ username: BAD_UTF8, password: 'x' })]],
    ['will QoS 3', [connect({ will: { topic: 'w', payload: 'bye', qos: 3 } })]],
    ['the reserved CONNECT flag', [connect({ flags: 0x01 })]],
    ['a password without a user name', [connect({ password: 'x' })]],
    ['invalid UTF-8 in a PUBLISH topic', [connect(), publish(BAD_UTF8, 'x')]],
    ['invalid UTF-8 in a SUBSCRIBE filter', [connect(), subscribe(BAD_UTF8)]],
    ['reserved flag bits in PINGREQ', [connect(), packet(0xc1)]],
    ['reserved flag bits in SUBSCRIBE', [connect(), packet(0x80, Buffer.from([0, 1]), str('a'), Buffer.from([0]))]],
    ['PUBLISH with QoS 3', [connect(), packet(0x36, str('a'), Buffer.from([0, 1]), Buffer.from('x'))]],
    // [MQTT-3.3.1-2]: DUP is 0 on every QoS 0 PUBLISH
    ['a QoS 0 PUBLISH with DUP set', [connect(), packet(0x38, str('dup/zero'), Buffer.from('{"v":1}'))]],
    ['reserved bits in a requested QoS', [connect(), subscribe('a', 0x04)]],
    ['packet type 0', [connect(), packet(0x00)]],
    ['packet type 15', [connect(), packet(0xf0)]],
    ['a server-only packet (CONNACK)', [connect(), packet(0x20, Buffer.from([0, 0]))]],
    ['a remaining length longer than 4 bytes', [connect(), Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x7f])]],
    // [MQTT-2.3.1-1]: a packet identifier is never 0
    ['a QoS 1 PUBLISH with packet id 0', [connect(), publish('a', 'x', 1, 0)]],
    ['a QoS 2 PUBLISH with packet id 0', [connect(), publish('a', 'x', 2, 0)]],
    ['a SUBSCRIBE with packet id 0', [connect(), subscribe('a', 0, 0)]],
    ['an UNSUBSCRIBE with packet id 0', [connect(), packet(0xa2, Buffer.from([0, 0]), str('a'))]],
    ['a PUBACK with packet id 0', [connect(), packet(0x40, Buffer.from([0, 0]))]],
    ['a PUBREC with packet id 0', [connect(), packet(0x50, Buffer.from([0, 0]))]],
    ['a PUBREL with packet id 0', [connect(), packet(0x62, Buffer.from([0, 0]))]],
    ['a PUBCOMP with packet id 0', [connect(), packet(0x70, Buffer.from([0, 0]))]],
    ['a PUBACK with a remaining length of 3', [connect(), packet(0x40, Buffer.from([0, 1, 0]))]],
    // [MQTT-3.12.1], [MQTT-3.14.1]: no variable header, no payload
    ['a PINGREQ with a remaining length of 1', [connect(), packet(0xc0, Buffer.from([0]))]],
    ['a DISCONNECT with a remaining length of 2', [connect(), packet(0xe0, Buffer.from([0, 0]))]],
    // Control characters (Mosquitto 2 refuses them too); broker.limits.allowControlCharacters lets them in.
    ['U+0001 in a PUBLISH topic', [connect(), publish('a\u0001b', 'x')]],
    ['U+007F in a PUBLISH topic', [connect(), publish('a\u007fb', 'x', 1)]],
    ['U+0085 in a PUBLISH topic', [connect(), publish('a\u0085b', 'x')]],
    ['U+001B in a SUBSCRIBE filter', [connect(), subscribe('a/\u001b[31m')]],
    ['U+000A in the client id', [connect({ clientId: 'a\nb' })]],
    ['U+0009 in the user name', [connect({ username: 'a\tb', password: 'x' })]],
    ['MQTT with level 3 (3.1 speaks MQIsdp)', [connect({ level: 3 })], 0x01],
    ['MQIsdp with level 4', [connect({ protocol: 'MQIsdp', level: 4 })], 0x01],
    ['MQTT level 5 (not spoken here)', [connect({ level: 5 })], 0x01],
    ['MQTT level 99', [connect({ level: 99 })], 0x01],
    ['an unknown protocol name', [connect({ protocol: 'HTTP', level: 4 })]],
  ];

  for (const [what, packets, connackCode] of malformed) {
    it(`closes the connection on ${what}${connackCode === undefined ? '' : ` after CONNACK 0x0${connackCode}`}, and only that one`, async () => {
      const before = agent.runtime.broker.stats().malformedPackets;
      const r = await exchange(port(), packets);
      expect(r.closed).toBe(true);
      if (connackCode !== undefined) expect(r.received).toEqual(Buffer.from([0x20, 0x02, 0x00, connackCode])); // [MQTT-3.1.2-2]
      expect(agent.runtime.broker.stats().malformedPackets).toBe(before + 1);
      // nothing else was disturbed
      const got = collect(observer, 1, 2000);
      await bystander.publishAsync('alive/check', what, { qos: 1 });
      expect((await got).map((m) => m.payload)).toEqual([what]);
      expect(bystander.connected).toBe(true);
    });
  }

  it('takes DUP on a QoS 1 PUBLISH (a resend): PUBACK, the connection stays', async () => {
    const r = await exchange(
      port(),
      [connect({ clientId: 'dup-one' }), packet(0x3a, str('dup/one'), Buffer.from([0, 5]), Buffer.from('{"v":1}'))],
      500,
    );
    expect(r.received).toEqual(Buffer.concat([CONNACK_OK, Buffer.from([0x40, 0x02, 0x00, 0x05])]));
    expect(r.closed).toBe(false);
  });

  it('speaks MQTT 3.1 (MQIsdp/3) and 3.1.1 (MQTT/4), also with the bridge bit 0x80 Mosquitto bridges set', async () => {
    for (const [protocol, level] of [
      ['MQIsdp', 3],
      ['MQTT', 4],
      ['MQIsdp', 0x83],
      ['MQTT', 0x84],
    ] as const) {
      const r = await exchange(port(), [connect({ protocol, level, clientId: `p${level}` })], 500);
      expect({ protocol, level, received: r.received, closed: r.closed }).toEqual({ protocol, level, received: CONNACK_OK, closed: false });
    }
  });

  for (const clean of [true, false]) {
    it(`unsolicited acks (CleanSession=${clean ? 1 : 0}): an unknown PUBACK or PUBCOMP is ignored, PUBREC answered with PUBREL and PUBREL with PUBCOMP, as Mosquitto 2 does [MQTT-4.3.3]`, async () => {
      const r = await exchange(
        port(),
        [
          connect({ clientId: `acks-${clean}`, clean }),
          packet(0x40, Buffer.from([0, 7])),
          packet(0x70, Buffer.from([0, 8])),
          packet(0x50, Buffer.from([0, 6])),
          packet(0x62, Buffer.from([0, 9])),
          packet(0xc0),
        ],
        800,
      );
      expect(r.closed).toBe(false);
      const pubrel = Buffer.from([0x62, 0x02, 0x00, 0x06]);
      const pubcomp = Buffer.from([0x70, 0x02, 0x00, 0x09]);
      const pingresp = Buffer.from([0xd0, 0x00]);
      expect(r.received).toEqual(Buffer.concat([CONNACK_OK, pubrel, pubcomp, pingresp]));
    });
  }

  it('a packet split across many TCP writes is still checked and accepted', async () => {
    const bytes = Buffer.concat([connect(), publish('split/topic', 'y'.repeat(300), 1)]);
    const pieces: Buffer[] = [];
    for (let i = 0; i < bytes.length; i += 3) pieces.push(bytes.subarray(i, i + 3));
    const r = await exchange(port(), pieces, 1500, 1);
    expect(r.closed).toBe(false);
    expect(r.received).toEqual(Buffer.concat([CONNACK_OK, Buffer.from([0x40, 0x02, 0x00, 0x01])]));
  });
});
