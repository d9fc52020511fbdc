// A client id squatted with a persistent session is not held against its owner for ever: the session
// expires once its client stays away (broker.persistentSessionExpiry), ends with its user, and can be
// listed and ended through the API and the CLI (the running agent's control socket).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cleanup, startAgent, tempDir, writeConfig, type InProcessAgent } from '../helpers/agent.js';
import { connackCode, connect } from '../helpers/mqtt.js';
import { addUser } from '../helpers/users.js';
import { WebClient } from '../helpers/web.js';
import { until } from '../helpers/servers.js';

const exec = promisify(execFile);
const as = (username: string, extra: object = {}) => ({ username, password: `pw-${username}`, ...extra });

/** `ops` takes the sensor's client id with a persistent session, subscribes, and goes away. */
async function squat(agent: InProcessAgent, clientId: string, user = 'ops'): Promise<void> {
  const squatter = await connect(agent.mqttUrl, as(user, { clientId, clean: false }));
  await squatter.subscribeAsync('cmd/#', { qos: 1 });
  await squatter.endAsync();
}

/** An agent with the tests' users, its persistent sessions ending after `expiry` away. */
async function agentWithUsers(expiry: string): Promise<{ dir: string; config: string; agent: InProcessAgent; api: WebClient }> {
  const dir = tempDir();
  const broker = { persistentSessionExpiry: expiry };
  const config = writeConfig(dir, { broker });
  for (const name of ['sensor', 'ops', 'temp', 'vera', 'root'])
    await addUser(config, name, `pw-${name}`, name === 'vera' ? ['viewer'] : name === 'root' ? ['admin'] : []);
  const agent = await startAgent({ broker }, dir);
  return { dir, config, agent, api: new WebClient(`http://127.0.0.1:${agent.port('http')}`, { basic: ['root', 'pw-root'] }) };
}

describe('squatted client ids', () => {
  let dir: string;
  let agent: InProcessAgent;
  let config: string;
  let api: WebClient;

  // Sessions here outlive the tests (CLI runs take seconds on a loaded machine); the expiry test has its own agent.
  beforeAll(async () => {
    ({ dir, config, agent, api } = await agentWithUsers('1h'));
  });
  afterAll(async () => {
    await agent.stop();
    cleanup(dir);
  });

  it('a squatted session expires once its client stays away past broker.persistentSessionExpiry', async () => {
    const short = await agentWithUsers('3s');
    try {
      await squat(short.agent, 'sensor-a');
      expect(await connackCode(short.agent.mqttUrl, as('sensor', { clientId: 'sensor-a' }))).toBe(5); // held while it lives
      const listed = (await short.api.get('/api/mqtt/sessions')).body as {
        clientId: string;
        owner: string;
        connected: boolean;
        subscriptions: number;
        expiresAt: string;
      }[];
      expect(listed.find((s) => s.clientId === 'sensor-a')).toMatchObject({
        owner: 'ops',
        connected: false,
        subscriptions: 1,
        expiresAt: expect.any(String),
      });
      await new Promise((r) => setTimeout(r, 3500));
      expect(await connackCode(short.agent.mqttUrl, as('sensor', { clientId: 'sensor-a' }))).toBe(0);
      expect(((await short.api.get('/api/mqtt/sessions')).body as { clientId: string }[]).map((s) => s.clientId)).not.toContain('sensor-a');
    } finally {
      await short.agent.stop();
      cleanup(short.dir);
    }
  });

  it("a removed user's sessions go with it", async () => {
    await squat(agent, 'sensor-b', 'temp');
    expect(await connackCode(agent.mqttUrl, as('sensor', { clientId: 'sensor-b' }))).toBe(5);
    await exec(process.execPath, [CLI, '--config', config, 'user', 'remove', 'temp']);
    expect(await connackCode(agent.mqttUrl, as('sensor', { clientId: 'sensor-b' }))).toBe(0);
  });

  it('an admin ends a session over the API (a viewer may not; an unknown one is 404); the owner then logs in', async () => {
    await squat(agent, 'sensor-c');
    expect(await connackCode(agent.mqttUrl, as('sensor', { clientId: 'sensor-c' }))).toBe(5);
    expect((await api.as({ basic: ['vera', 'pw-vera'] }).del('/api/mqtt/sessions/sensor-c')).status).toBe(403);
    expect((await api.del('/api/mqtt/sessions/no-such-client')).status).toBe(404);
    expect((await api.del('/api/mqtt/sessions/sensor-c')).status).toBe(204);
    expect(await connackCode(agent.mqttUrl, as('sensor', { clientId: 'sensor-c' }))).toBe(0);
  });

  it('the CLI lists and ends sessions through the running agent, a connected client included', async () => {
    await squat(agent, 'sensor-d');
    const held = await connect(agent.mqttUrl, as('ops', { clientId: 'sensor-e', clean: false }));
    const list = await exec(process.execPath, [CLI, '--config', config, 'session', 'list']);
    expect(list.stdout).toMatch(/sensor-d {2}owner ops {2}away, ends \S+ {2}1 subscriptions {2}0 queued/);
    expect(list.stdout).toMatch(/sensor-e {2}owner ops {2}connected/);
    await exec(process.execPath, [CLI, '--config', config, 'session', 'end', 'sensor-d']);
    await exec(process.execPath, [CLI, '--config', config, 'session', 'end', 'sensor-e']);
    expect(await connackCode(agent.mqttUrl, as('sensor', { clientId: 'sensor-d' }))).toBe(0);
    await until(() => !held.connected, 5000, 'the connected session ended');
    const unknown = await exec(process.execPath, [CLI, '--config', config, 'session', 'end', 'nobody']).catch(
      (err: { code: number; stderr: string }) => err,
    );
    expect(unknown).toMatchObject({ code: 1, stderr: expect.stringMatching(/nothing at/) });
    held.end(true);
  });
});
