import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, startAgent, type InProcessAgent } from '../helpers/agent.js';
import { collect, connect } from '../helpers/mqtt.js';

describe('$SYS topics', () => {
  let agent: InProcessAgent;
  beforeAll(async () => {
    agent = await startAgent({ broker: { sysInterval: 1 } });
  });
  afterAll(async () => {
    await agent.stop();
    cleanup(agent.dir);
  });

  it('publishes broker counters at the configured interval, retained', async () => {
    const pub = await connect(agent.mqttUrl);
    for (let i = 0; i < 3; i++) await pub.publishAsync('data/x', String(i), { qos: 1 });
    const sys = await connect(agent.mqttUrl);
    const first = collect(sys, 7, 3000);
    await sys.subscribeAsync('$SYS/broker/#');
    const retained = await first;
    expect(retained.every((m) => m.retain)).toBe(true);
    const value = (msgs: typeof retained, t: string) => msgs.filter((m) => m.topic === `$SYS/broker/${t}`).at(-1)?.payload;
    expect(value(retained, 'uptime')).toMatch(/^\d+ seconds$/);
    expect(value(retained, 'version')).toMatch(/^edge-agent \d+\.\d+\.\d+/);
    // the next tick reflects the traffic above
    const next = await collect(sys, 7, 2500);
    expect(Number(value(next, 'clients/connected'))).toBe(2);
    expect(Number(value(next, 'messages/received'))).toBeGreaterThanOrEqual(3);
    expect(Number(value(next, 'messages/sent'))).toBeGreaterThan(0);
    await Promise.all([pub.endAsync(), sys.endAsync()]);
  });

  it('keeps $SYS out of a plain # subscription [MQTT-4.7.2-1]', async () => {
    const all = await connect(agent.mqttUrl);
    await all.subscribeAsync('#');
    const sys = await connect(agent.mqttUrl);
    await sys.subscribeAsync('$SYS/broker/uptime');
    // Positive control: over the same 2.5 s (two $SYS ticks) the $SYS subscriber gets uptime, and # gets a plain message.
    const onAll = collect(all, 100, 2500);
    const onSys = collect(sys, 100, 2500);
    const pub = await connect(agent.mqttUrl);
    await pub.publishAsync('plain/seen', 'x', { qos: 1 });
    const [got, sysGot] = await Promise.all([onAll, onSys]);
    expect(sysGot.some((m) => m.topic === '$SYS/broker/uptime')).toBe(true);
    expect(got.map((m) => m.topic)).toContain('plain/seen');
    expect(got.filter((m) => m.topic.startsWith('$'))).toEqual([]);
    await Promise.all([all.endAsync(), sys.endAsync(), pub.endAsync()]);
  });
});
