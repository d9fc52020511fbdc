// The machine's health from fake /sys and /proc trees laid out as a Raspberry Pi's kernel lays them
// out (this machine has no Pi firmware): temperature, the firmware's throttling flags, network; in
// the API, the metrics and `edge-agent health`.
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeThrottled, readNetwork, readTemperature, readThrottling, sampleSystem } from '../../agent/health/system.js';
import { CLI, cleanup, startAgent, tempDir, type InProcessAgent } from '../helpers/agent.js';
import { adminClient } from '../helpers/web.js';

const run = promisify(execFile);

function put(root: string, path: string, text: string): void {
  mkdirSync(join(root, path, '..'), { recursive: true });
  writeFileSync(join(root, path), text);
}

/** /sys and /proc as on a Pi 4 that is under-voltage and throttled now (0x50005). */
function fakePi(root: string, throttled = '50005'): { sys: string; proc: string } {
  const sys = join(root, 'sys');
  const proc = join(root, 'proc');
  put(sys, 'class/thermal/thermal_zone0/temp', '61234\n');
  put(sys, 'class/thermal/thermal_zone1/temp', '48000\n');
  put(sys, 'class/thermal/cooling_device0/cur_state', '0\n'); // not a zone: ignored
  put(sys, 'devices/platform/soc/soc:firmware/get_throttled', `${throttled}\n`);
  put(sys, 'class/net/eth0/operstate', 'up\n');
  put(sys, 'class/net/wlan0/operstate', 'down\n');
  put(
    proc,
    'net/dev',
    [
      'Inter-|   Receive                                                |  Transmit',
      ' face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed',
      '    lo:  123456     100    0    0    0     0          0         0   123456     100    0    0    0     0       0          0',
      '  eth0: 98765432   70000    0    0    0     0          0         0 12345678   40000    0    0    0     0       0          0',
      ' wlan0:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0',
    ].join('\n'),
  );
  return { sys, proc };
}

describe('system health', () => {
  let dir: string;

  beforeAll(() => {
    dir = tempDir();
  });
  afterAll(() => cleanup(dir));

  it('decodes the firmware flags, now and since boot', () => {
    expect(decodeThrottled(0x50005, 'sysfs')).toEqual({
      source: 'sysfs',
      raw: 0x50005,
      now: ['under-voltage', 'throttled'],
      sinceBoot: ['under-voltage', 'throttled'],
    });
    expect(decodeThrottled(0xe0000, 'vcgencmd')).toMatchObject({
      now: [],
      sinceBoot: ['arm-frequency-capped', 'throttled', 'soft-temperature-limit'],
    });
    expect(decodeThrottled(0, 'sysfs')).toMatchObject({ now: [], sinceBoot: [] });
  });

  it('reads temperature, throttling and network from the trees; nothing where there is nothing', async () => {
    const pi = fakePi(join(dir, 'pi'));
    expect(readTemperature(pi.sys)).toBe(61.234);
    expect(await readThrottling({ ...pi })).toMatchObject({ source: 'sysfs', now: ['under-voltage', 'throttled'] });
    expect(readNetwork({ ...pi })).toEqual([
      { name: 'eth0', up: true, rxBytes: 98765432, txBytes: 12345678 },
      { name: 'wlan0', up: false, rxBytes: 0, txBytes: 0 },
    ]);
    const bare = join(dir, 'bare');
    mkdirSync(bare);
    expect(readTemperature(bare)).toBeNull();
    expect(await readThrottling({ sys: bare, proc: bare })).toBeNull();
    // vcgencmd, when installed, is asked first (a script standing in for it here).
    const fake = join(dir, 'vcgencmd');
    writeFileSync(fake, '#!/bin/sh\necho throttled=0x80008\n');
    chmodSync(fake, 0o755);
    expect(await readThrottling({ sys: bare, proc: bare, vcgencmd: fake })).toMatchObject({
      source: 'vcgencmd',
      now: ['soft-temperature-limit'],
      sinceBoot: ['soft-temperature-limit'],
    });
    // The real machine's own files: a full sample with figures in range.
    const real = await sampleSystem({ sys: '/sys', proc: '/proc' });
    expect(real.memory.totalBytes).toBeGreaterThan(real.memory.availableBytes);
    expect(real.cpu.cores).toBeGreaterThan(0);
    expect(real.cpu.percent).toBeGreaterThanOrEqual(0);
    expect(real.uptimeSeconds).toBeGreaterThan(0);
  });

  describe('in a running agent', () => {
    let agent: InProcessAgent;

    beforeAll(async () => {
      const pi = fakePi(join(dir, 'agent-pi'));
      agent = await startAgent({ health: { system: { sysfsPath: pi.sys, procfsPath: pi.proc, vcgencmd: false, intervalSec: 1 } } });
    });
    afterAll(async () => {
      await agent.stop();
      cleanup(agent.dir);
    });

    it('shows the machine in /api/health, the metrics and `edge-agent health`', async () => {
      const api = adminClient(agent);
      const health = (await api.get('/api/health')).body;
      expect(health.system).toMatchObject({
        temperatureC: 61.234,
        throttling: { now: ['under-voltage', 'throttled'] },
        network: [
          { name: 'eth0', up: true },
          { name: 'wlan0', up: false },
        ],
      });
      const metrics = (await api.get('/metrics')).body as string;
      expect(metrics).toMatch(/^system_temperature_celsius 61\.234$/m);
      expect(metrics).toMatch(/^pi_throttled\{flag="under-voltage"\} 1$/m);
      expect(metrics).toMatch(/^pi_throttled\{flag="soft-temperature-limit"\} 0$/m);
      expect(metrics).toMatch(/^pi_throttled_since_boot\{flag="throttled"\} 1$/m);
      expect(metrics).toMatch(/^system_network_receive_bytes_total\{interface="eth0"\} 98765432$/m);
      const { stdout } = await run(process.execPath, [CLI, '--config', agent.configPath, 'health']);
      expect(stdout).toMatch(/^agent: ready/m);
      expect(stdout).toMatch(/61\.2 °C/);
      expect(stdout).toMatch(/throttling \(sysfs, 0x50005\): now under-voltage, throttled; since boot under-voltage, throttled/);
      const json = JSON.parse((await run(process.execPath, [CLI, '--config', agent.configPath, 'health', '--json'])).stdout) as {
        agentRunning: boolean;
        system: { temperatureC: number };
      };
      expect(json).toMatchObject({ agentRunning: true, system: { temperatureC: 61.234 } });
    });
  });
});
