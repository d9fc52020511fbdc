// What a Pi owner does in the first week: runs the agent, then adds a sink (or removes one and adds
// it back) to an agent with data, and meets disk pressure. The agent comes up, the new sink gets what
// the log still holds and every later reading, and what it can no longer get is counted and shown.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cleanup, spawnAgent, startAgent, tempDir, writeConfig, type ChildAgent } from '../helpers/agent.js';
import { connect } from '../helpers/mqtt.js';
import { createDatabase, PG_PASSWORD, startMosquitto, until, type ServerProcess, type TestDatabase } from '../helpers/servers.js';

const run = promisify(execFile);

describe('adding a sink to an agent with data', () => {
  let db: TestDatabase;
  let upstream: ServerProcess;
  beforeAll(async () => {
    db = await createDatabase();
    upstream = await startMosquitto();
  });
  afterAll(async () => {
    await db.drop();
    await upstream.stop();
  });

  const sinks = () => [
    { name: 'cloud', type: 'postgres', url: db.url, password: PG_PASSWORD, table: 'cloud', batch: { maxAgeMs: 20 } },
    { name: 'up', type: 'mqtt', url: upstream.url, topic: 'fleet/{topic}', batch: { maxAgeMs: 20 } },
  ];
  const status = async (config: string) =>
    JSON.parse((await run(process.execPath, [CLI, 'sync', 'status', '--json', '--config', config])).stdout);
  const publish = async (agent: ChildAgent, from: number, n: number) => {
    const client = await connect(`mqtt://${agent.listeners.mqtt}`);
    for (let i = from; i < from + n; i++) await client.publishAsync('field/t', JSON.stringify({ i }), { qos: 1 });
    await client.endAsync();
  };
  const stop = async (agent: ChildAgent, signal: NodeJS.Signals = 'SIGTERM') => {
    agent.proc.kill(signal);
    await agent.exited;
  };
  const pgSeqs = async () => (await db.query<{ seq: string }>('SELECT seq FROM cloud ORDER BY seq')).map((r) => Number(r.seq));

  it('PostgreSQL and MQTT sinks added after the store and rollups consumed all: the agent is ready, the sinks get what the log holds and every later reading; removed and added again, likewise', async () => {
    const dir = tempDir();
    const upstreamGot: number[] = [];
    const sub = await connect(upstream.url);
    sub.on('message', (_t, payload) => upstreamGot.push(JSON.parse(payload.toString()).seq));
    await sub.subscribeAsync('fleet/#', { qos: 1 });
    let agent: ChildAgent | undefined;
    try {
      // First days: no sink. Five readings reach the store and the rollups, which let the log's chunks go.
      let config = writeConfig(dir, {});
      agent = await spawnAgent(['--config', config]);
      await publish(agent, 1, 5);
      await until(async () => {
        const s = await status(config);
        return s.store.lagRecords === 0 && s.rollups.lagRecords === 0;
      });
      await stop(agent);
      // Two more that the store has not taken yet (it gathers for a minute) when the agent is killed: the log holds them.
      const slow = { store: { gatherMs: 60_000, maxGatherMs: 60_000 }, rollups: { gatherMs: 60_000, maxGatherMs: 60_000 } };
      agent = await spawnAgent(['--config', writeConfig(dir, slow)]);
      await publish(agent, 6, 2);
      await stop(agent, 'SIGKILL');

      // The owner adds a PostgreSQL sink and an MQTT sink; `config check` would say ok; the agent starts.
      config = writeConfig(dir, { sinks: sinks() });
      agent = await spawnAgent(['--config', config]);
      const health = await fetch(`http://${agent.listeners.http}/health/live`);
      expect(health.status).toBe(200);
      await publish(agent, 8, 3);
      await until(async () => (await pgSeqs()).length === 5 && upstreamGot.length === 5, 20_000, 'the new sinks to get seqs 6-10');
      expect(await pgSeqs()).toEqual([6, 7, 8, 9, 10]);
      expect([...upstreamGot].sort((a, b) => a - b)).toEqual([6, 7, 8, 9, 10]);
      const s = await status(config);
      for (const sink of s.sinks) {
        expect(sink).toMatchObject({
          state: 'ok',
          lagRecords: 0,
          start: { startAt: 'oldest', seq: 5 },
          dropped: { 'deleted before it was added': 5 },
          spins: 0,
        });
      }
      const text = (await run(process.execPath, [CLI, 'sync', 'status', '--config', config])).stdout;
      expect(text).toMatch(/\ncloud\s+postgres\s+ok\s+oldest \(after seq 5\)\s+0\s/);
      expect(text).toMatch(/dropped before confirmed: .*sink:cloud 5 \(deleted before it was added\)/);
      await stop(agent);

      // The sinks taken out for a while (their cursors dropped), readings go on, then the PostgreSQL sink comes back.
      config = writeConfig(dir, {});
      agent = await spawnAgent(['--config', config]);
      await publish(agent, 11, 4);
      await until(async () => (await status(config)).store.lagRecords === 0);
      await stop(agent);
      config = writeConfig(dir, { sinks: [sinks()[0]] });
      agent = await spawnAgent(['--config', config]);
      await publish(agent, 15, 2);
      await until(async () => (await pgSeqs()).length === 7, 20_000, 'the re-added sink to get seqs 15 and 16');
      expect(await pgSeqs()).toEqual([6, 7, 8, 9, 10, 15, 16]);
      const again = (await status(config)).sinks[0];
      expect(again).toMatchObject({
        state: 'ok',
        lagRecords: 0,
        start: { startAt: 'oldest', seq: 14 },
        dropped: { 'deleted before it was added': 14 },
      });
    } finally {
      if (agent) await stop(agent, 'SIGKILL');
      await sub.endAsync();
      cleanup(dir);
    }
  }, 120_000);
});

describe('disk pressure drops the only unsent chunk', () => {
  it('the store passes over it and stays live; a restart on that data directory becomes ready and goes on', async () => {
    const dir = tempDir();
    // The store and rollups gather for a minute: the reading is still unsent to them when relief drops it.
    const slow = { store: { gatherMs: 60_000, maxGatherMs: 60_000 }, rollups: { gatherMs: 60_000, maxGatherMs: 60_000 } };
    let agent = await startAgent(slow, dir);
    try {
      // Large readings: a commit larger than a journal frame goes into LevelDB at once (a small one
      // stays in the journal until the next checkpoint, and dropping it would free nothing).
      const large = (i: number) => JSON.stringify({ i, noise: randomBytes(24_000).toString('base64') });
      const client = await connect(agent.mqttUrl);
      await client.publishAsync('field/t', large(1), { qos: 1 });
      const drop = await agent.runtime.log.dropOldestUnsent('disk pressure');
      expect(drop?.perConsumer).toEqual({ store: 1, rollups: 1 });
      expect(await agent.runtime.store!.caughtUp(1, 5000)).toBe(true); // passed over, not spun on
      const live = await fetch(`http://127.0.0.1:${agent.port('http')}/health/live`);
      expect(live.status).toBe(200);
      await client.publishAsync('field/t', '{"i":2}', { qos: 1 });
      expect(await agent.runtime.store!.caughtUp(2, 5000)).toBe(true);
      expect((await agent.runtime.store!.target.query({ topic: 'field/t' })).map((r) => r.seq)).toEqual([2]);
      expect(agent.runtime.store?.status()).toMatchObject({ state: 'ok', spins: 0 });
      await client.endAsync();
      // The same again, then a restart with the dropped chunk the last the log had.
      const c2 = await connect(agent.mqttUrl);
      await c2.publishAsync('field/t', large(3), { qos: 1 });
      await c2.endAsync();
      expect((await agent.runtime.log.dropOldestUnsent('disk pressure'))?.perConsumer).toEqual({ store: 1, rollups: 1 });
      await agent.stop();
      agent = await startAgent(slow, dir);
      const c3 = await connect(agent.mqttUrl);
      await c3.publishAsync('field/t', '{"i":4}', { qos: 1 });
      await c3.endAsync();
      expect(await agent.runtime.store!.caughtUp(4, 5000)).toBe(true);
      expect((await agent.runtime.store!.target.query({ topic: 'field/t' })).map((r) => r.seq)).toEqual([2, 4]);
      expect(agent.runtime.log.stats().dropped).toEqual({ store: { 'disk pressure': 2 }, rollups: { 'disk pressure': 2 } });
    } finally {
      await agent.stop();
      cleanup(dir);
    }
  });
});
