// A persistent session belongs to the user who made it; deliveries follow the client's current
// rules; a removed user or a changed role reaches open connections within a second.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cleanup, startAgent, tempDir, writeConfig, type InProcessAgent } from '../helpers/agent.js';
import { collect, connackCode, connect, connectCollecting } from '../helpers/mqtt.js';
import { addUser } from '../helpers/users.js';
import { until } from '../helpers/servers.js';

const exec = promisify(execFile);

describe('sessions belong to their user', () => {
  const dir = tempDir();
  let agent: InProcessAgent;
  let config: string;
  const acl = [
    { user: 'alice', publish: [], subscribe: ['cmd/alice/#'] },
    { user: 'ops', publish: ['cmd/#', 'data/#'], subscribe: [] },
    { role: 'reader', publish: [], subscribe: ['data/#'] },
  ];
  const as = (username: string, extra: object = {}) => ({ username, password: `pw-${username}`, ...extra });

  beforeAll(async () => {
    config = writeConfig(dir, { broker: { acl } });
    for (const [name, roles] of [
      ['alice', []],
      ['bob', []],
      ['ops', []],
      ['carol', ['reader']],
      ['dave', ['reader']],
      ['erin', ['reader']],
      ['frank', ['reader']],
    ] as const)
      await addUser(config, name, `pw-${name}`, [...roles]);
    agent = await startAgent({ broker: { acl } }, dir);
    // Seven runs of `edge-agent user add` (a CLI start and a scrypt hash each) took over 30 s once
    // on the 2-core CI machine with three other test files running.
  }, 120_000);
  afterAll(async () => {
    await agent.stop();
    cleanup(dir);
  });

  it("another user presenting alice's client id gets CONNACK 0x05; alice keeps her session and receives her queued command", async () => {
    const alice = await connect(agent.mqttUrl, as('alice', { clientId: 'alice-dev', clean: false }));
    await alice.subscribeAsync('cmd/alice/#', { qos: 1 });
    await alice.endAsync();
    const ops = await connect(agent.mqttUrl, as('ops'));
    await ops.publishAsync('cmd/alice/reboot', 'now', { qos: 1 });

    expect(await connackCode(agent.mqttUrl, as('bob', { clientId: 'alice-dev', clean: false }))).toBe(5);
    expect(await connackCode(agent.mqttUrl, as('bob', { clientId: 'alice-dev', clean: true }))).toBe(5); // would wipe her session
    expect(await connackCode(agent.mqttUrl, { clientId: 'alice-dev', clean: false })).toBe(5); // anonymous, from loopback

    const back = await connectCollecting(agent.mqttUrl, as('alice', { clientId: 'alice-dev', clean: false }), 1);
    expect((await back.messages).map((m) => `${m.topic}=${m.payload}`)).toEqual(['cmd/alice/reboot=now']);

    // While she is connected, bob cannot kick her off; she still gets what comes next.
    expect(await connackCode(agent.mqttUrl, as('bob', { clientId: 'alice-dev' }))).toBe(5);
    expect(back.client.connected).toBe(true);
    const next = collect(back.client, 1);
    await ops.publishAsync('cmd/alice/update', 'v2', { qos: 1 });
    expect((await next).map((m) => m.payload)).toEqual(['v2']);

    // Alice herself may take over her own session [MQTT-3.1.4-2]: the old connection is closed.
    const closed = new Promise<void>((resolve) => back.client.once('close', () => resolve()));
    const again = await connect(agent.mqttUrl, as('alice', { clientId: 'alice-dev', clean: false }));
    await closed;
    expect(again.connected).toBe(true);
    await again.endAsync();
    await ops.endAsync();
    back.client.end(true);
  });

  it('a subscription restored from a persistent session is checked against the rules of now', async () => {
    const erin = await connect(agent.mqttUrl, as('erin', { clientId: 'erin-dev', clean: false }));
    await erin.subscribeAsync('data/#', { qos: 1 });
    await erin.endAsync();
    await addUser(config, 'erin', 'pw-erin', []); // no longer a reader
    const denied = agent.runtime.broker.stats().subscribeDenied;
    const back = await connectCollecting(agent.mqttUrl, as('erin', { clientId: 'erin-dev', clean: false }), 1, 1500);
    expect(agent.runtime.broker.stats().subscribeDenied).toBe(denied + 1); // the restored data/# was refused
    const frank = await connect(agent.mqttUrl, as('frank'));
    await frank.subscribeAsync('data/#', { qos: 1 });
    const control = collect(frank, 1);
    const ops = await connect(agent.mqttUrl, as('ops'));
    await ops.publishAsync('data/restored', 'x', { qos: 1 });
    expect((await control).map((m) => m.payload)).toEqual(['x']);
    expect(await back.messages).toEqual([]);
    for (const c of [back.client, frank, ops]) await c.endAsync();
  });

  it('a removed user is disconnected within a second, so is one whose password changed; a changed role changes what is delivered', async () => {
    const carol = await connect(agent.mqttUrl, as('carol'));
    const dave = await connect(agent.mqttUrl, as('dave'));
    await carol.subscribeAsync('data/#', { qos: 1 });
    await dave.subscribeAsync('data/#', { qos: 1 });
    const ops = await connect(agent.mqttUrl, as('ops'));
    // Positive control: both readers get it.
    const first = [collect(carol, 1), collect(dave, 1)];
    await ops.publishAsync('data/a', '1', { qos: 1 });
    expect((await Promise.all(first)).map((got) => got.length)).toEqual([1, 1]);

    // carol loses the reader role: what her subscription matches is no longer delivered to her.
    await addUser(config, 'carol', 'pw-carol', []);
    await new Promise((r) => setTimeout(r, 1500));
    const second = [collect(carol, 1, 1500), collect(dave, 1)];
    const deniedBefore = agent.runtime.broker.stats().forwardDenied;
    await ops.publishAsync('data/b', '2', { qos: 1 });
    const [toCarol, toDave] = await Promise.all(second);
    expect(toDave.map((m) => m.payload)).toEqual(['2']);
    expect(toCarol).toEqual([]);
    expect(agent.runtime.broker.stats().forwardDenied).toBe(deniedBefore + 1);

    // dave is removed: his connection closes (the users file is looked at every second).
    await exec(process.execPath, [CLI, '--config', config, 'user', 'remove', 'dave']);
    expect(await until(() => !dave.connected, 10_000)).toBe(true);
    expect(carol.connected).toBe(true);

    // carol's password changes (by the CLI): her connection closes too; a login with the new one works.
    await addUser(config, 'carol', 'pw-carol-2', []);
    expect(await until(() => !carol.connected, 3000)).toBe(true);
    expect(ops.connected).toBe(true); // control: another user's connection stays
    const renewed = await connect(agent.mqttUrl, { ...as('carol'), password: 'pw-carol-2', reconnectPeriod: 0 });
    expect(renewed.connected).toBe(true);
    for (const c of [renewed, ops]) await c.endAsync();
    carol.end(true);
    dave.end(true);
  });
});
