import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoginGuard } from '../../embedded-broker/login-guard.js';
import { makeAuthenticate } from '../../embedded-broker/auth.js';
import { isLoopback, setConnectionInfo } from '../../embedded-broker/connection-info.js';
import { newStats } from '../../embedded-broker/stats.js';
import { cleanup, startAgent, tempDir, writeConfig, type InProcessAgent } from '../helpers/agent.js';
import { connackCode } from '../helpers/mqtt.js';
import { createTestHost, netnsAvailable, type TestHost } from '../helpers/netns.js';
import { addUser } from '../helpers/users.js';
import { PassThrough } from 'node:stream';
import type { Aedes, Client } from 'aedes';
import { quiet } from '../helpers/logger.js';

const exec = promisify(execFile);
const canNetns = netnsAvailable();

describe.skipIf(!canNetns)('anonymous access from another host (network namespace)', () => {
  const dir = tempDir();
  let host: TestHost;
  let agent: InProcessAgent;
  let open: InProcessAgent | undefined;

  beforeAll(async () => {
    host = createTestHost();
    await addUser(writeConfig(dir), 'field', 'field-pw');
    agent = await startAgent({ broker: { mqtt: { host: '0.0.0.0' } }, web: { http: { host: '0.0.0.0' } } }, dir);
  });
  afterAll(async () => {
    await agent.stop();
    await open?.stop();
    host.destroy();
    cleanup(dir);
  });

  const pub = (port: number, ...auth: string[]) =>
    exec(host.exec[0], [
      ...host.exec.slice(1),
      'mosquitto_pub',
      '-h',
      host.hostAddress,
      '-p',
      String(port),
      '-q',
      '1',
      '-t',
      'x',
      '-m',
      'y',
      ...auth,
    ]).then(
      () => 'accepted',
      (e: { stderr: string }) => e.stderr,
    );

  it('refuses anonymous clients from beyond loopback by default (CONNACK 5)', async () => {
    expect(await pub(agent.port('mqtt'))).toMatch(/not authori[sz]ed/i);
    expect(agent.runtime.broker.stats().authFailures).toBeGreaterThan(0);
  });

  it('over WebSocket too: anonymous from another host is refused, a user is accepted', async () => {
    // MQTT.js inside the namespace, over ws://, answering with the CONNACK code (0 = accepted).
    const script = (auth: string) =>
      `import('mqtt').then(({ default: mqtt }) => { const c = mqtt.connect('ws://${host.hostAddress}:${agent.port('http')}/mqtt', { reconnectPeriod: 0${auth} }); ` +
      `c.on('connect', () => { console.log(0); c.end(true); }); c.on('error', (e) => { console.log(e.code ?? e.message); c.end(true); }); })`;
    const run = async (auth: string) =>
      (await exec(host.exec[0], [...host.exec.slice(1), process.execPath, '-e', script(auth)], { cwd: process.cwd() })).stdout.trim();
    expect(await run('')).toBe('5');
    expect(await run(", username: 'field', password: 'field-pw'")).toBe('0');
  });

  it('still accepts anonymous clients on loopback and users from anywhere', async () => {
    expect(await connackCode(agent.mqttUrl)).toBe(0);
    expect(await pub(agent.port('mqtt'), '-u', 'field', '-P', 'field-pw')).toBe('accepted');
  });

  it('accepts anonymous remote clients when allowAnonymous is true', async () => {
    const dir2 = tempDir();
    open = await startAgent({ broker: { mqtt: { host: '0.0.0.0' }, allowAnonymous: true } }, dir2);
    expect(await pub(open.port('mqtt'))).toBe('accepted');
    await open.stop();
    cleanup(dir2);
  });
});

describe('anonymous policy decision (remote address injected)', () => {
  async function decide(policy: 'loopback' | boolean, remoteAddress: string): Promise<number | true> {
    const conn = new PassThrough();
    setConnectionInfo(conn, { listener: 'mqtt', remoteAddress });
    const users = { verify: async () => null, roles: async () => [] };
    const owners = { sessionOwner: () => undefined, setSessionOwner() {} };
    const guard = new LoginGuard(
      {
        maxPendingLogins: 8,
        maxPendingPerAddress: 8,
        failuresBeforeDelay: 3,
        failuresBeforeBan: 10,
        failuresBeforeAddressBan: 30,
        banMs: 60_000,
        hashConcurrency: 1,
      },
      quiet,
    );
    const auth = makeAuthenticate(
      () => ({ connectedClients: 0, clients: {} }) as unknown as Aedes,
      { allowAnonymous: policy, useIdentityAsUsername: false, maxClients: 10, acl: [], users, owners, guard },
      newStats(),
      quiet,
    );
    const client = { id: 'c', conn } as unknown as Client;
    return new Promise((resolve) => auth(client, undefined, undefined, (err) => resolve(err ? err.returnCode : true)));
  }

  it('recognises loopback addresses', () => {
    expect(['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1'].every(isLoopback)).toBe(true);
    expect(['198.18.0.2', '::ffff:198.18.0.2', 'fe80::1', '', '1127.0.0.1'].some(isLoopback)).toBe(false);
  });

  it('applies loopback | true | false', async () => {
    expect(await decide('loopback', '127.0.0.1')).toBe(true);
    expect(await decide('loopback', '198.18.0.2')).toBe(5);
    expect(await decide(true, '198.18.0.2')).toBe(true);
    expect(await decide(false, '127.0.0.1')).toBe(5);
  });
});
