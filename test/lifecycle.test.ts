import net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanup, portOf, spawnAgent, tempDir, writeConfig } from './helpers/agent.js';
import { connect } from './helpers/mqtt.js';

const refused = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => (s.destroy(), resolve(false)));
    s.on('error', () => resolve(true));
  });

describe('lifecycle', () => {
  const dir = tempDir();
  afterAll(() => cleanup(dir));

  it('logs one ready line with every listener, port 0 resolved', async () => {
    const agent = await spawnAgent(['--config', writeConfig(dir)]);
    const ready = agent.lines.filter((l) => l.includes('"msg":"ready"'));
    expect(ready).toHaveLength(1);
    const { listeners } = JSON.parse(ready[0]);
    expect(Object.keys(listeners).sort()).toEqual(['http', 'mqtt', 'ws']);
    for (const hostPort of Object.values(listeners) as string[]) expect(portOf(hostPort)).toBeGreaterThan(0);
    agent.proc.kill('SIGTERM');
    expect(await agent.exited).toBe(0);
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal} disconnects clients, closes the listeners and exits 0`, async () => {
      const agent = await spawnAgent(['--config', writeConfig(dir)], { EDGE_AGENT_LOG__LEVEL: 'info' });
      const port = portOf(agent.listeners.mqtt);
      const client = await connect(`mqtt://127.0.0.1:${port}`);
      const closed = new Promise<void>((r) => client.once('close', () => r()));
      agent.proc.kill(signal);
      expect(await agent.exited).toBe(0);
      await closed;
      expect(await refused(port)).toBe(true);
      expect(agent.lines.some((l) => l.includes('"msg":"stopped"'))).toBe(true);
      client.end(true);
    });
  }

  it('a second signal exits at once with code 1', async () => {
    const agent = await spawnAgent(['--config', writeConfig(dir)]);
    agent.proc.kill('SIGTERM');
    agent.proc.kill('SIGINT');
    expect(await agent.exited).toBe(1);
    expect(agent.lines.some((l) => l.includes('second signal'))).toBe(true);
  });

  it('fails to start with exit 1 when a port is taken', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as net.AddressInfo).port;
    await expect(spawnAgent(['--config', writeConfig(dir, { broker: { mqtt: { port } } })])).rejects.toThrow(
      /exited with 1[\s\S]*EADDRINUSE/,
    );
    blocker.close();
  });
});
