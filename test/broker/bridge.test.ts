// A Mosquitto 2 bridge into the agent with default settings (try_private true: protocol level 0x84).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMosquitto, until, type ServerProcess } from '../../scripts/servers.js';
import { cleanup, startAgent, type InProcessAgent } from '../helpers/agent.js';
import { connect } from '../helpers/mqtt.js';

describe('Mosquitto bridge into the agent', () => {
  let agent: InProcessAgent;
  let mosquitto: ServerProcess;
  beforeAll(async () => {
    agent = await startAgent({ store: { gatherMs: 50 } });
    mosquitto = await startMosquitto({ extra: ['connection agent', `address 127.0.0.1:${agent.port('mqtt')}`, 'topic bridge/# out 1'] });
  });
  afterAll(async () => {
    await mosquitto.stop();
    await agent.stop();
    cleanup(agent.dir);
  });

  it('connects with its defaults and forwards what is published to Mosquitto', async () => {
    const client = await connect(mosquitto.url);
    // The bridge connects on its own schedule: publish until a reading arrives.
    const stored = await until(
      async () => {
        await client.publishAsync('bridge/room-1', '{"t":21}', { qos: 1 });
        await new Promise((r) => setTimeout(r, 200));
        const rows = await agent.runtime.store!.target.query({ topic: 'bridge/#' });
        return rows.length > 0 && rows;
      },
      20_000,
      'a reading through the bridge',
    );
    expect(stored[0]).toMatchObject({ topic: 'bridge/room-1', payload: { t: 21 }, qos: 1 });
    expect(agent.runtime.broker.stats().malformedPackets).toBe(0);
    await client.endAsync();
  });
});
