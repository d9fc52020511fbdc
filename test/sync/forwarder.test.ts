// The forwarder against a real PostgreSQL behind a loopback proxy that can cut the link.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cleanup, spawnAgent, startAgent, tempDir, writeConfig } from '../helpers/agent.js';
import { connect } from '../helpers/mqtt.js';
import { createDatabase, PG_PASSWORD, TcpProxy, until, type TestDatabase } from '../helpers/servers.js';
import { statusOf, untilStatus } from '../helpers/sync.js';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('forwarder', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createDatabase();
  });
  afterAll(async () => {
    await db.drop();
  });

  const pgSink = (name: string, port: number, extra: Record<string, unknown> = {}) => ({
    name,
    type: 'postgres',
    url: `postgres://edge_test@127.0.0.1:${port}/${db.name}`,
    password: PG_PASSWORD,
    table: name,
    batch: { maxAgeMs: 50 },
    retry: { initialMs: 100, maxMs: 500 },
    timeoutMs: 3000,
    ...extra,
  });

  it('link cut for a while under load: every reading arrives exactly once, in order per topic; another sink never waits', async () => {
    const proxy = await new TcpProxy(db.port).listen();
    const agent = await startAgent({ sinks: [pgSink('outage', proxy.port), pgSink('steady', db.port)] });
    try {
      const clients = await Promise.all([0, 1, 2].map((c) => connect(agent.mqttUrl, { clientId: `load-${c}` })));
      const total = 3 * 400;
      let cutAt = 0;
      for (let i = 0; i < 400; i++) {
        await Promise.all(clients.map((c, k) => c.publishAsync(`plant/${k}`, JSON.stringify({ k, i }), { qos: 1 })));
        if (i === 100) {
          proxy.cut();
          cutAt = agent.runtime.log.lastSeq;
        }
        if (i === 300) {
          const [outage, steady] = await Promise.all([statusOf(agent, 'outage'), statusOf(agent, 'steady')]);
          expect(outage.state).toBe('retrying');
          expect(outage.lagRecords).toBeGreaterThan(agent.runtime.log.lastSeq - cutAt - 100);
          expect(outage.lastError?.message).toMatch(/^postgres: /);
          expect(steady.lagRecords).toBeLessThan(200); // the healthy sink keeps up meanwhile
          proxy.restore();
        }
        if (i % 20 === 0) await sleep(10);
      }
      await Promise.all(clients.map((c) => c.endAsync()));
      await untilStatus(agent, 'outage', (s) => s.lagRecords === 0, 30_000);
      for (const table of ['outage', 'steady']) {
        const rows = await db.query<{ seq: string; k: number; i: number }>(
          `SELECT seq, (payload->>'k')::int AS k, (payload->>'i')::int AS i FROM ${table} ORDER BY seq`,
        );
        expect(rows).toHaveLength(total);
        expect(new Set(rows.map((r) => `${r.k}:${r.i}`)).size).toBe(total);
        for (const k of [0, 1, 2]) expect(rows.filter((r) => r.k === k).map((r) => r.i)).toEqual(Array.from({ length: 400 }, (_, i) => i));
      }
      expect((await statusOf(agent, 'outage')).state).toBe('ok');
    } finally {
      await agent.stop();
      cleanup(agent.dir);
      await proxy.close();
    }
  });

  it('while a backlog drains, new readings still arrive within seconds (live lane)', async () => {
    const proxy = await new TcpProxy(db.port).listen();
    // A metered link: 40 kB/s makes the backlog of ~3,000 readings take several seconds.
    const agent = await startAgent({
      sinks: [pgSink('lanes', proxy.port, { maxBytesPerSec: 40_000, batch: { maxAgeMs: 50, maxRecords: 100 }, live: { afterMs: 1000 } })],
    });
    try {
      const client = await connect(agent.mqttUrl);
      proxy.cut();
      for (let i = 0; i < 3000; i++) client.publish('backlog/x', JSON.stringify({ i, pad: 'x'.repeat(60) }), { qos: 0 });
      await client.publishAsync('backlog/x', '{"last":true}', { qos: 1 });
      await sleep(1200);
      proxy.restore();
      await untilStatus(agent, 'lanes', (s) => s.liveLane, 15_000);
      const latencies: number[] = [];
      for (let n = 0; n < 5; n++) {
        const sentAt = Date.now();
        await client.publishAsync('live/x', JSON.stringify({ n }), { qos: 1 });
        await until(
          async () => (await db.query(`SELECT 1 FROM lanes WHERE topic = 'live/x' AND (payload->>'n')::int = ${n}`)).length === 1,
          10_000,
          `live reading ${n}`,
        );
        latencies.push(Date.now() - sentAt);
      }
      const during = await statusOf(agent, 'lanes');
      expect(during.lagRecords, 'the backlog was still draining').toBeGreaterThan(0);
      expect(
        Math.max(...latencies),
        `live lane latencies ${latencies.join(', ')} ms while ${during.lagRecords} backlog readings waited`,
      ).toBeLessThan(5000);
      await untilStatus(agent, 'lanes', (s) => s.lagRecords === 0 && !s.liveLane, 60_000);
      const [{ n, distinct }] = await db.query<{ n: string; distinct: string }>(
        'SELECT count(*) AS n, count(DISTINCT seq) AS distinct FROM lanes',
      );
      expect([Number(n), Number(distinct)]).toEqual([3006, 3006]);
      // After the merge the cursor is past everything: a restart sends nothing again.
      expect(agent.runtime.log.cursor('sink:lanes')).toBe(agent.runtime.log.lastSeq);
    } finally {
      await agent.stop();
      cleanup(agent.dir);
      await proxy.close();
    }
  });

  it("estimates the time to drain a backlog from what the sink takes when sent to, not from the trickle before the outage; 'unknown' before it has taken anything", async () => {
    const proxy = await new TcpProxy(db.port).listen();
    const agent = await startAgent({ sinks: [pgSink('eta', proxy.port, { batch: { maxAgeMs: 50, maxRecords: 500 } })] });
    try {
      const client = await connect(agent.mqttUrl);
      proxy.cut();
      await client.publishAsync('eta/x', '{"i":-1}', { qos: 1 });
      await untilStatus(agent, 'eta', (s) => s.state === 'retrying', 10_000);
      expect((await statusOf(agent, 'eta')).drainEtaSec).toBeNull(); // never measured: unknown
      proxy.restore();
      await untilStatus(agent, 'eta', (s) => s.lagRecords === 0, 10_000);
      // A trickle: a reading every 100 ms for 2 s, sent one small batch at a time.
      for (let i = 0; i < 20; i++) {
        await client.publishAsync('eta/x', JSON.stringify({ i }), { qos: 1 });
        await sleep(100);
      }
      await untilStatus(agent, 'eta', (s) => s.lagRecords === 0, 10_000);
      proxy.cut();
      for (let i = 0; i < 3000; i++) client.publish('eta/x', JSON.stringify({ i }), { qos: 0 });
      await client.publishAsync('eta/x', '{"last":true}', { qos: 1 });
      const down = await untilStatus(agent, 'eta', (s) => s.state === 'retrying' && s.lagRecords > 2000, 10_000);
      // At the trickle's rate (about 10 a second) 3,000 readings would take about 5 minutes.
      expect(down.recordsPerSec).toBeLessThan(50);
      expect(down.drainEtaSec).not.toBeNull();
      expect(down.drainEtaSec!).toBeLessThan(down.lagRecords / 50);
      proxy.restore();
      await untilStatus(agent, 'eta', (s) => s.lagRecords === 0, 30_000);
      await client.endAsync();
    } finally {
      await agent.stop();
      cleanup(agent.dir);
      await proxy.close();
    }
  });

  it('bandwidth cap: bytes on the wire per second stay under maxBytesPerSec', async () => {
    const cap = 30_000;
    const agent = await startAgent({
      sinks: [pgSink('metered', db.port, { maxBytesPerSec: cap, batch: { maxAgeMs: 20, maxRecords: 50 } })],
    });
    try {
      const client = await connect(agent.mqttUrl);
      const started = Date.now();
      for (let i = 0; i < 800; i++) client.publish('m/x', JSON.stringify({ i, pad: 'y'.repeat(80) }), { qos: 0 });
      await client.publishAsync('m/x', '{}', { qos: 1 });
      await client.endAsync();
      await untilStatus(agent, 'metered', (s) => s.lagRecords === 0, 30_000);
      const seconds = (Date.now() - started) / 1000;
      const { sent } = await statusOf(agent, 'metered');
      // The bucket starts full (one second's worth), then refills at the cap.
      expect(sent.bytesOut).toBeGreaterThan(3 * cap);
      expect((sent.bytesOut - cap) / seconds).toBeLessThanOrEqual(cap * 1.05);
    } finally {
      await agent.stop();
      cleanup(agent.dir);
    }
  });

  it('topic filters: a sink gets only the topics it names, less those it excludes', async () => {
    const agent = await startAgent({
      sinks: [pgSink('filtered', db.port, { topics: ['sensors/#', 'alarms/+'], excludeTopics: ['sensors/debug/#'] })],
    });
    try {
      const client = await connect(agent.mqttUrl);
      for (const topic of ['sensors/a', 'sensors/debug/x', 'alarms/fire', 'alarms/fire/2', 'other/b', 'sensors/b/c'])
        await client.publishAsync(topic, '{"v":1}', { qos: 1 });
      await client.endAsync();
      await untilStatus(agent, 'filtered', (s) => s.lagRecords === 0 && s.sent.records > 0);
      const rows = await db.query<{ topic: string }>('SELECT topic FROM filtered ORDER BY seq');
      expect(rows.map((r) => r.topic)).toEqual(['sensors/a', 'alarms/fire', 'sensors/b/c']);
    } finally {
      await agent.stop();
      cleanup(agent.dir);
    }
  });

  it('`edge-agent sync status` shows state, lag, oldest unsent, throughput, drain time and last error; also with no agent running', async () => {
    const dir = tempDir();
    const proxy = await new TcpProxy(db.port).listen();
    proxy.cut();
    const config = writeConfig(dir, { sinks: [pgSink('cli', proxy.port)] });
    const agent = await spawnAgent(['--config', config]);
    try {
      const port = Number(agent.listeners.mqtt.split(':').pop());
      const client = await connect(`mqtt://127.0.0.1:${port}`);
      for (let i = 0; i < 5; i++) await client.publishAsync('a/b', '{"v":1}', { qos: 1 });
      await client.endAsync();
      await sleep(1500);
      const { stdout } = await run(process.execPath, [CLI, 'sync', 'status', '--config', config]);
      const [header, storeRow, rollupsRow, row] = stdout.trim().split('\n');
      expect(header).toMatch(/^consumer\s+type\s+state\s+start\s+lag\s+oldest unsent\s+records\/s\s+drain in\s+last error$/);
      expect(storeRow).toMatch(/^store\s+sqlite\s+ok\s+-\s+0\s+-/);
      expect(rollupsRow).toMatch(/^rollups\s+sqlite\s+ok\s+-\s+0\s+-/);
      expect(row).toMatch(/^cli\s+postgres\s+retrying\s+oldest \(after seq 0\)\s+5\s+\ds\s+0\.0\s+unknown\s+\S+Z postgres: /);
      const json = JSON.parse((await run(process.execPath, [CLI, 'sync', 'status', '--json', '--config', config])).stdout);
      expect(json).toMatchObject({
        agentRunning: true,
        store: { type: 'sqlite', state: 'ok', lagRecords: 0 },
        sinks: [{ name: 'cli', state: 'retrying', lagRecords: 5 }],
      });
      expect(json.sinks[0].oldestUnsentMs).toBeGreaterThan(1000);
      agent.proc.kill('SIGTERM');
      await agent.exited;
      const offline = (await run(process.execPath, [CLI, 'sync', 'status', '--config', config])).stdout;
      expect(offline).toMatch(/^agent not running: lag as the log on disk holds it\n/);
      expect(offline).toMatch(/\ncli\s+postgres\s+stopped\s+oldest \(after seq 0\)\s+5\s/);
      expect(offline).toMatch(/\nstore\s+sqlite\s+stopped\s+-\s+0\s/);
      expect(offline).toMatch(/\nrollups\s+sqlite\s+stopped\s+-\s+0\s/);
    } finally {
      agent.proc.kill('SIGKILL');
      await proxy.close();
      cleanup(dir);
    }
  });
});
