import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanup, portOf, spawnAgent, tempDir, writeConfig, type ChildAgent } from '../helpers/agent.js';
import { collect, connect, connectCollecting } from '../helpers/mqtt.js';

const exec = promisify(execFile);

describe('LevelDB persistence', () => {
  it("passes aedes-persistence's own abstract suite, unmodified", async () => {
    const suite = resolve(import.meta.dirname, 'persistence-abstract.mjs');
    const { stdout } = await exec(process.execPath, ['--test', '--test-reporter=tap', suite], { maxBuffer: 16 << 20 });
    expect(stdout).toMatch(/^# pass 50$/m);
    expect(stdout).toMatch(/^# fail 0$/m);
  }, 120_000);
});

describe('retained messages and persistent sessions survive a restart', () => {
  const dir = tempDir();
  const config = writeConfig(dir);
  afterAll(() => cleanup(dir));
  const url = (agent: ChildAgent) => `mqtt://127.0.0.1:${portOf(agent.listeners.mqtt)}`;

  /** The agent stopped by `signal` and started again on the same data (each test's agents end with it). */
  async function restart(agent: ChildAgent, signal: NodeJS.Signals): Promise<ChildAgent> {
    // The session store is written behind memory within milliseconds; a SIGKILL inside that window
    // may lose the newest queue entry (the readings themselves are in the fsync'd ingest log).
    if (signal === 'SIGKILL') await new Promise((r) => setTimeout(r, 300));
    agent.proc.kill(signal);
    await agent.exited;
    return spawnAgent(['--config', config]);
  }

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`after ${signal}`, async () => {
      const first = await spawnAgent(['--config', config]);
      const subId = `durable-${signal}`;
      const sub = await connect(url(first), { clientId: subId, clean: false });
      await sub.subscribeAsync('alerts/#', { qos: 1 });
      await sub.endAsync();

      const pub = await connect(url(first));
      await pub.publishAsync(`status/${signal}`, 'online', { qos: 1, retain: true });
      for (let i = 0; i < 5; i++) await pub.publishAsync('alerts/door', `open-${i}`, { qos: 1 });
      await pub.endAsync();

      const agent = await restart(first, signal);

      const { client: back, messages } = await connectCollecting(url(agent), { clientId: subId, clean: false }, 5, 5000);
      const queued = await messages;
      expect(queued.map((m) => m.payload)).toEqual(['open-0', 'open-1', 'open-2', 'open-3', 'open-4']);
      // The session's subscription itself is also back: a new message arrives without subscribing again.
      const live = collect(back, 1, 3000);
      const pub2 = await connect(url(agent));
      await pub2.publishAsync('alerts/window', 'open', { qos: 1 });
      expect((await live).map((m) => m.topic)).toEqual(['alerts/window']);

      const reader = await connect(url(agent));
      const retained = collect(reader, 1, 3000);
      await reader.subscribeAsync(`status/${signal}`);
      expect(await retained).toEqual([{ topic: `status/${signal}`, payload: 'online', retain: true }]);
      await Promise.all([back.endAsync(), pub2.endAsync(), reader.endAsync()]);
    }, 30_000);
  }
});
