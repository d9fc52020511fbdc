import { it, expect } from 'vitest';
import { startAgent } from './helpers/agent.js';
import { collect, connect } from './helpers/mqtt.js';
it('dbg', async () => {
  const agent = await startAgent({ broker: { limits: { maxQueuedPerClient: 3 } } });
  for (let round = 0; round < 10; round++) {
    const id = `sleepy${round}`;
    const sub = await connect(agent.mqttUrl, { clientId: id, clean: false });
    await sub.subscribeAsync('q/#', { qos: 1 });
    await sub.endAsync();
    const pub = await connect(agent.mqttUrl);
    for (let i = 0; i < 5; i++) await pub.publishAsync('q/x', `m${i}`, { qos: 1 });
    await pub.endAsync();
    const back = await connect(agent.mqttUrl, { clientId: id, clean: false });
    const got = await collect(back, 10, 800);
    console.log(round, got.map((m) => m.payload).join(','));
    await back.endAsync();
    const cleanup = await connect(agent.mqttUrl, { clientId: id, clean: true }); await cleanup.endAsync();
  }
  await agent.stop();
}, 60000);
