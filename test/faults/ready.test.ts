// /health/ready: 200 only when every part of the data path works; the body names each part (to a
// caller with credentials; without, only the states).
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/servers.js';
import { cleanup, startAgent, type InProcessAgent } from '../helpers/agent.js';
import { connect } from '../helpers/mqtt.js';
import { createDatabase } from '../helpers/servers.js';
import { adminClient, authHeader } from '../helpers/web.js';

const agents: InProcessAgent[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) {
    await a.stop();
    cleanup(a.dir);
  }
});

async function ready(agent: InProcessAgent, signedIn = true) {
  const res = await fetch(`http://127.0.0.1:${agent.port('http')}/health/ready`, {
    headers: signedIn ? authHeader(adminClient(agent).creds) : {},
  });
  return {
    code: res.status,
    body: (await res.json()) as {
      status: string;
      parts: { name: string; state: string; since: string; lastError?: { message: string } }[];
    },
  };
}

describe('/health/ready', () => {
  it('is 200 with every part ok', async () => {
    const agent = await startAgent();
    agents.push(agent);
    const { code, body } = await ready(agent);
    expect(code).toBe(200);
    expect(body.status).toBe('ready');
    expect(body.parts.map((p) => [p.name, p.state])).toEqual([
      ['log', 'ok'],
      ['store', 'ok'],
      ['rollups', 'ok'],
      ['disk', 'ok'],
      ['broker', 'ok'],
      ['dead-letters', 'ok'],
    ]);
  });

  /** A PostgreSQL sink whose server is away: it retries, and the log keeps what it cannot send. */
  async function awaySink(extra: object = {}) {
    const closed = await freePort(); // nothing listens there
    const agent = await startAgent({
      ...extra,
      sinks: [{ name: 'cloud', type: 'postgres', url: `postgres://edge@127.0.0.1:${closed}/x`, retry: { initialMs: 100, maxMs: 200 } }],
    });
    agents.push(agent);
    const client = await connect(agent.mqttUrl);
    await client.publishAsync('a/b', '{"v":1}', { qos: 1 });
    await client.endAsync();
    let report = await ready(agent);
    for (let i = 0; i < 100 && report.body.parts.find((p) => p.name === 'sink:cloud')?.state !== 'retrying'; i++) {
      await new Promise((r) => setTimeout(r, 50));
      report = await ready(agent);
    }
    return { agent, report };
  }

  it('is 200 "buffering" while a sink only retries (the log keeps its readings), naming it with its state, last error and since when', async () => {
    const { agent, report } = await awaySink();
    expect(report.code).toBe(200);
    expect(report.body.status).toBe('buffering');
    const sink = report.body.parts.find((p) => p.name === 'sink:cloud');
    expect(sink).toMatchObject({ state: 'retrying', lastError: { message: expect.stringMatching(/ECONNREFUSED/) } });
    expect(Date.parse(sink!.since)).toBeGreaterThan(0);
    expect(report.body.parts.filter((p) => p.name !== 'sink:cloud').every((p) => p.state === 'ok')).toBe(true);
    // Without credentials: the states, not the sink's name, its host or its error.
    const anonymous = await ready(agent, false);
    expect(anonymous.code).toBe(200);
    expect(JSON.stringify(anonymous.body)).not.toMatch(/cloud|127\.0\.0\.1|ECONNREFUSED|lastError/);
    expect(anonymous.body.parts.find((p) => p.name.startsWith('sink'))).toMatchObject({ state: 'retrying' });
  });

  it('is 503 for the same outage with health.readiness.sinkOutages notReady', async () => {
    const { report } = await awaySink({ health: { readiness: { sinkOutages: 'notReady' } } });
    expect(report.code).toBe(503);
    expect(report.body.status).toBe('not ready');
  });

  it('is 503 when a sink is down (a person must act: a wrong password), buffering or not', async () => {
    const db = await createDatabase();
    try {
      const agent = await startAgent({
        sinks: [
          {
            name: 'cloud',
            type: 'postgres',
            url: `postgres://edge_test@127.0.0.1:${db.port}/${db.name}`,
            password: 'wrong-password',
            retry: { initialMs: 100, maxMs: 200 },
          },
        ],
      });
      agents.push(agent);
      const client = await connect(agent.mqttUrl);
      await client.publishAsync('a/b', '{"v":1}', { qos: 1 });
      await client.endAsync();
      await expect
        .poll(async () => (await ready(agent)).body.parts.find((p) => p.name === 'sink:cloud')?.state, { timeout: 10_000 })
        .toBe('down');
      const report = await ready(agent);
      expect(report.code).toBe(503);
      expect(report.body.status).toBe('not ready');
    } finally {
      await db.drop();
    }
  });
});
