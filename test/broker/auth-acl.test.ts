import { execFile } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cleanup, startAgent, tempDir, writeConfig, type InProcessAgent } from '../helpers/agent.js';
import { collect, connackCode, connect, subackCodes } from '../helpers/mqtt.js';
import { addUser } from '../helpers/users.js';

const exec = promisify(execFile);

describe('users and ACLs', () => {
  const dir = tempDir();
  let agent: InProcessAgent;
  const acl = [
    { role: 'sensor', publish: ['sensors/%u/#'], subscribe: ['cmd/%u/#'] },
    { user: 'ops', publish: ['cmd/#'], subscribe: ['sensors/#', '$SYS/#'] },
    { anonymous: true, publish: ['public/%c'], subscribe: ['public/#'] },
  ];

  beforeAll(async () => {
    const config = writeConfig(dir, { broker: { acl } });
    await addUser(config, 'pi-1', 'pw-one', ['sensor']);
    await addUser(config, 'ops', 'pw-ops');
    agent = await startAgent({ broker: { acl } }, dir);
  });
  afterAll(async () => {
    await agent.stop();
    cleanup(dir);
  });

  it('stores users hashed with scrypt in a 0600 file and lists them', async () => {
    const path = join(dir, 'data', 'users.json');
    const text = readFileSync(path, 'utf8');
    expect(text).toMatch(/"\$scrypt\$ln=14,r=8,p=1\$[^"]+"/);
    expect(text).not.toContain('pw-one');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const { stdout } = await exec(process.execPath, [CLI, '--config', agent.configPath, 'user', 'list']);
    expect(stdout.trim().split('\n')).toEqual(['pi-1\tsensor', 'ops']);
  });

  it('accepts right passwords and refuses wrong ones with CONNACK 4', async () => {
    expect(await connackCode(agent.mqttUrl, { username: 'pi-1', password: 'pw-one' })).toBe(0);
    expect(await connackCode(agent.mqttUrl, { username: 'pi-1', password: 'wrong' })).toBe(4);
    expect(await connackCode(agent.mqttUrl, { username: 'nobody', password: 'pw-one' })).toBe(4);
  });

  it('lets a user publish only where the ACL allows, dropping and counting the rest', async () => {
    const ops = await connect(agent.mqttUrl, { username: 'ops', password: 'pw-ops' });
    const sensor = await connect(agent.mqttUrl, { username: 'pi-1', password: 'pw-one', clientId: 'pi-1-client' });
    await ops.subscribeAsync('sensors/#', { qos: 1 });
    const before = agent.runtime.broker.stats().publishDenied;
    const received = collect(ops, 2, 1500);
    await sensor.publishAsync('sensors/pi-1/temp', '21.5', { qos: 1 }); // allowed (%u)
    await sensor.publishAsync('sensors/pi-2/temp', 'spoof', { qos: 1 }); // another user's topic: PUBACKed, dropped
    await sensor.publishAsync('sensors/pi-1/hum', '40', { qos: 0 });
    const got = await received;
    expect(got.map((m) => `${m.topic}=${m.payload}`)).toEqual(['sensors/pi-1/temp=21.5', 'sensors/pi-1/hum=40']);
    expect(agent.runtime.broker.stats().publishDenied).toBe(before + 1);
    expect(sensor.connected).toBe(true);
    await Promise.all([ops.endAsync(), sensor.endAsync()]);
  });

  it('answers a denied subscription with 0x80 and grants allowed ones', async () => {
    const sensor = await connect(agent.mqttUrl, { username: 'pi-1', password: 'pw-one' });
    expect(await subackCodes(sensor, ['cmd/pi-1/#', 'cmd/pi-2/#', 'sensors/#', '#'], 1)).toEqual([1, 128, 128, 128]);
    await sensor.endAsync();
  });

  it('checks subscriptions for coverage, not overlap', async () => {
    const ops = await connect(agent.mqttUrl, { username: 'ops', password: 'pw-ops' });
    expect(await subackCodes(ops, ['sensors/+/temp', 'sensors/#', '#', '$SYS/broker/uptime'])).toEqual([0, 0, 128, 0]);
    await ops.endAsync();
  });

  it('substitutes %c for anonymous loopback clients and lets nobody publish to $SYS', async () => {
    const anon = await connect(agent.mqttUrl, { clientId: 'kiosk' });
    const watcher = await connect(agent.mqttUrl, { clientId: 'watcher' });
    await watcher.subscribeAsync('public/#');
    const received = collect(watcher, 2, 1500);
    await anon.publishAsync('public/kiosk', 'mine', { qos: 1 });
    await anon.publishAsync('public/other', 'not mine', { qos: 1 });
    await anon.publishAsync('$SYS/broker/uptime', 'fake', { qos: 1 });
    expect((await received).map((m) => m.payload)).toEqual(['mine']);
    await Promise.all([anon.endAsync(), watcher.endAsync()]);
  });

  it('works with mosquitto_pub and mosquitto_sub', async () => {
    const port = String(agent.port('mqtt'));
    const sub = execFile('mosquitto_sub', [
      '-h',
      '127.0.0.1',
      '-p',
      port,
      '-u',
      'ops',
      '-P',
      'pw-ops',
      '-t',
      'sensors/#',
      '-C',
      '1',
      '-W',
      '10',
    ]);
    let exited = false;
    const out = new Promise<string>((resolve) => {
      let text = '';
      sub.stdout!.on('data', (d) => (text += d));
      sub.on('exit', () => {
        exited = true;
        resolve(text);
      });
    });
    // mosquitto_sub says nothing when it has subscribed: publish until it has its one message (-C 1).
    for (let i = 0; i < 100 && !exited; i++) {
      await exec('mosquitto_pub', [
        '-h',
        '127.0.0.1',
        '-p',
        port,
        '-u',
        'pi-1',
        '-P',
        'pw-one',
        '-q',
        '1',
        '-t',
        'sensors/pi-1/x',
        '-m',
        'from-mosquitto',
      ]);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((await out).trim()).toBe('from-mosquitto');
    const denied = await exec('mosquitto_pub', [
      '-h',
      '127.0.0.1',
      '-p',
      port,
      '-u',
      'pi-1',
      '-P',
      'bad',
      '-t',
      'sensors/pi-1/x',
      '-m',
      'x',
    ]).catch((e) => e);
    expect(String(denied.stderr)).toMatch(/not authori[sz]ed|bad user name or password/i);
  });

  it('user remove revokes access without a restart', async () => {
    await exec(process.execPath, [CLI, '--config', agent.configPath, 'user', 'remove', 'ops']);
    expect(await connackCode(agent.mqttUrl, { username: 'ops', password: 'pw-ops' })).toBe(4);
    const missing = await exec(process.execPath, [CLI, '--config', agent.configPath, 'user', 'remove', 'ops']).catch((e) => e);
    expect(missing.code).toBe(1);
  });
});

describe('user add on a terminal', () => {
  const dir = tempDir();
  afterAll(() => cleanup(dir));

  /** Run `user add` in a pseudo-terminal (util-linux `script`) and answer its prompts. */
  function addOnTty(config: string, name: string, answers: string[]): Promise<string> {
    return new Promise((resolve) => {
      const cmd = `${process.execPath} ${CLI} --config ${config} user add ${name}`;
      const child = execFile('script', ['-qec', cmd, '/dev/null'], { timeout: 15_000 }, (_err, stdout) => resolve(stdout));
      const prompts = ['Password:', 'Repeat:'];
      let output = '';
      let answered = 0;
      child.stdout!.on('data', (d) => {
        output += d;
        while (answered < answers.length && output.includes(prompts[answered])) child.stdin!.write(`${answers[answered++]}\r`);
      });
    });
  }

  it('prompts twice without echoing, and refuses a mismatch', async () => {
    const config = writeConfig(dir);
    const out = await addOnTty(config, 'tty-user', ['tty-secret', 'tty-secret']);
    expect(out).toContain('Password:');
    expect(out).toContain('user tty-user saved');
    expect(out).not.toContain('tty-secret');
    const agent = await startAgent({}, dir);
    expect(await connackCode(agent.mqttUrl, { username: 'tty-user', password: 'tty-secret' })).toBe(0);
    await agent.stop();
    const mismatch = await addOnTty(config, 'other', ['one', 'two']);
    expect(mismatch).toContain('passwords do not match');
  });
});
