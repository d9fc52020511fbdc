// QoS 0 at full speed under the default policy: a publisher faster than the disk is slowed by TCP
// back-pressure, and nothing is lost. The same load under `drop` is the control: it does lose some.
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, startAgent, type InProcessAgent } from '../helpers/agent.js';
import { connect } from '../helpers/mqtt.js';
import { until } from '../helpers/servers.js';

const PUBLISHERS = 8;
const EACH = 20_000;
const TOTAL = PUBLISHERS * EACH;

const agents: InProcessAgent[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) {
    await a.stop();
    cleanup(a.dir);
  }
});

/** 8 publishers send 20,000 QoS 0 readings each as fast as they can; resolves once all are written out. */
async function firehose(agent: InProcessAgent): Promise<void> {
  const clients = await Promise.all(Array.from({ length: PUBLISHERS }, (_, p) => connect(agent.mqttUrl, { clientId: `fast-${p}` })));
  const pad = 'x'.repeat(100);
  await Promise.all(
    clients.map(async (client, p) => {
      for (let i = 0; i < EACH; i++) client.publish(`fast/${p}`, `{"p":${p},"i":${i},"pad":"${pad}"}`, { qos: 0 });
      await client.endAsync(); // after everything queued is written
    }),
  );
}

async function settled(agent: InProcessAgent): Promise<void> {
  const { log, ingestStats } = agent.runtime;
  await until(() => log.lastSeq + ingestStats.qos0Dropped >= TOTAL, 60_000, 'every reading taken or counted dropped');
  expect(await agent.runtime.store!.caughtUp(log.lastSeq, 60_000)).toBe(true);
}

describe('QoS 0 at full speed (8 x 20,000, a small maxPendingBytes so the log falls behind)', () => {
  it('the default policy (block) stores every reading, in order', async () => {
    const agent = await startAgent({ buffer: { maxPendingBytes: 16 * 1024 } });
    agents.push(agent);
    await firehose(agent);
    await settled(agent);
    expect(agent.runtime.ingestStats.qos0Dropped).toBe(0);
    expect(agent.runtime.log.lastSeq).toBe(TOTAL);
    const rows = await agent.runtime.store!.target.query({ topic: 'fast/3', limit: EACH + 1 });
    expect(rows.map((r) => (r.payload as { i: number }).i)).toEqual([...Array(EACH).keys()]);
  }, 120_000);

  it('control: the same load under drop loses readings, and counts each one', async () => {
    const agent = await startAgent({ ingest: { qos0Overflow: 'drop' }, buffer: { maxPendingBytes: 16 * 1024 } });
    agents.push(agent);
    await firehose(agent);
    await settled(agent);
    const dropped = agent.runtime.ingestStats.qos0Dropped;
    expect(dropped).toBeGreaterThan(0);
    expect(agent.runtime.log.lastSeq + dropped).toBe(TOTAL);
  }, 120_000);
});
