// Dead letters at their cap: with whenFull hold (the default) nothing is evicted; a new refused
// reading waits unacknowledged, its sender held, until some are replayed or purged; /health/ready
// and an alert say so. With dropOldest the oldest go, counted, and health says that too.
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, startAgent, type InProcessAgent } from '../helpers/agent.js';
import { connect } from '../helpers/mqtt.js';
import { adminClient } from '../helpers/web.js';
import { until } from '../helpers/servers.js';

const agents: InProcessAgent[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) {
    await a.stop();
    cleanup(a.dir);
  }
});

const strict = { name: 'strict', topics: ['s/#'], fields: { v: 'float' } };
const bad = (i: number) => JSON.stringify({ v: `not a number ${i}` });

async function withCap(whenFull?: 'hold' | 'dropOldest') {
  const agent = await startAgent({
    ingest: { schemas: [strict], deadLetters: { maxCount: 5, ...(whenFull ? { whenFull } : {}) } },
    health: { alerts: { intervalSec: 1 } },
  });
  agents.push(agent);
  return { agent, api: adminClient(agent) };
}

const letters = async (api: ReturnType<typeof adminClient>) =>
  ((await api.get('/api/dead-letters')).body.deadLetters as { id: number; payloadText: string }[]).map((d) => d.payloadText).sort();
const part = async (api: ReturnType<typeof adminClient>) =>
  ((await api.get('/health/ready')).body.parts as { name: string; state: string }[]).find((p) => p.name === 'dead-letters')!.state;

describe('dead letters at their cap', () => {
  it('hold: the sixth refused reading waits for room, unacknowledged; others go on; health and an alert say so; a purge lets it in, nothing evicted', async () => {
    const { agent, api } = await withCap();
    const sensor = await connect(agent.mqttUrl, { clientId: 'bad-sensor' });
    for (let i = 0; i < 5; i++) await sensor.publishAsync('s/x', bad(i), { qos: 1 });
    let acked = false;
    const sixth = sensor.publishAsync('s/x', bad(5), { qos: 1 }).then(() => (acked = true));
    await until(() => agent.runtime.ingestStats.heldForDeadLetters === 1, 10_000, 'the sixth held');
    // Control: while the sixth waits, a valid reading from another client is taken and acknowledged.
    const good = await connect(agent.mqttUrl, { clientId: 'good-sensor' });
    await good.publishAsync('s/y', JSON.stringify({ v: 1.5 }), { qos: 1 });
    expect(acked).toBe(false);
    expect(agent.runtime.ingestStats.heldForDeadLetters).toBe(1);
    expect(await part(api)).toMatch(/^refusing: dead letters full \(5 of 5, ingest\.deadLetters\)/);
    expect((await api.get('/health/ready')).status).toBe(503);
    await expect
      .poll(async () => ((await api.get('/api/alerts')).body.active as { name: string }[]).map((a) => a.name), { timeout: 5000 })
      .toContain('dead-letters-full');

    const oldest = Math.min(...((await api.get('/api/dead-letters')).body.deadLetters as { id: number }[]).map((d) => d.id));
    expect((await api.del(`/api/dead-letters/${oldest}`)).status).toBe(204);
    await sixth;
    expect(acked).toBe(true);
    expect(await letters(api)).toEqual([1, 2, 3, 4, 5].map(bad).sort()); // the purged one gone, none evicted
    expect(agent.runtime.log.stats().deadLettersDropped).toBe(0);
    await sensor.endAsync();
    await good.endAsync();
  });

  it('dropOldest: every refused reading is acknowledged, the oldest go (counted), and health says it is dropping', async () => {
    const { agent, api } = await withCap('dropOldest');
    const sensor = await connect(agent.mqttUrl, { clientId: 'bad-sensor' });
    for (let i = 0; i < 7; i++) await sensor.publishAsync('s/x', bad(i), { qos: 1 });
    expect(await letters(api)).toEqual([2, 3, 4, 5, 6].map(bad).sort());
    expect(agent.runtime.log.stats().deadLettersDropped).toBe(2);
    expect(await part(api)).toMatch(/^dropping: dead letters full/);
    await sensor.endAsync();
  });
});
