// `npm test` on a fresh machine: scripts/prerequisites.mjs, run in a minimal Debian with none of the
// packages installed (a chroot), names what is missing and either installs it (root on Debian) or
// stops with the one command to run.
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../scripts/project-root.js';
import { cleanup } from '../helpers/agent.js';
import { debianChroot } from '../helpers/chroot.js';
import { isRoot } from '../helpers/disk.js';
// @ts-expect-error: plain JavaScript (it runs before anything is compiled), without declarations
import { missing, NEEDED, plan } from '../../scripts/prerequisites.mjs';

const run = promisify(execFile);
const SCRIPT = join(projectRoot(), 'scripts/prerequisites.mjs');
const everyPackage = [...new Set((NEEDED as string[][]).map(([, pkg]) => pkg))];

describe('what npm test does about missing programs', () => {
  it('installs on Debian as root, else stops with the command to run, and does nothing when all is there', () => {
    expect(plan([], true, true)).toEqual({ action: 'none' });
    expect(plan(['mosquitto', 'sqlite3'], true, true)).toEqual({
      action: 'install',
      command: 'apt-get install -y --no-install-recommends mosquitto sqlite3',
    });
    expect(plan(['mosquitto'], true, false)).toEqual({
      action: 'stop',
      command: 'sudo apt-get update && sudo apt-get install -y --no-install-recommends mosquitto',
    });
    expect(plan(['mosquitto'], false, true)).toEqual({ action: 'stop', command: undefined });
  });

  it('finds nothing missing on this machine, where the suite runs', async () => {
    expect(missing()).toEqual([]);
    const { stdout, stderr } = await run(process.execPath, [SCRIPT, '--dry-run']);
    expect(stdout + stderr).toBe('');
  });
});

describe.runIf(isRoot)('npm test on a fresh Debian (a minimal chroot)', () => {
  let chroot: string;
  const inChroot = (user: string, args: string[]) =>
    run('chroot', [`--userspec=${user}`, chroot, '/usr/local/bin/node', '/opt/prerequisites.mjs', ...args], {
      env: { PATH: '/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' },
    }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (err: { code: number; stdout: string; stderr: string }) => err,
    );

  beforeAll(async () => {
    chroot = await debianChroot();
    copyFileSync(process.execPath, join(chroot, 'usr/local/bin/node'));
    copyFileSync(SCRIPT, join(chroot, 'opt/prerequisites.mjs'));
  }, 600_000);
  afterAll(() => chroot && cleanup(chroot));

  it('as root, names every package it lacks and would install them with apt-get', async () => {
    const r = await inChroot('root:root', ['--dry-run']);
    expect(r.code).toBe(0);
    const line = /\(dry run\) would run: apt-get update && apt-get install -y --no-install-recommends (.+)/.exec(r.stdout)?.[1];
    const listed = line?.split(' ') ?? [];
    // A minimal Debian has none of the servers and tools; it does have what Debian requires (util-linux's runuser).
    for (const pkg of ['mosquitto', 'mosquitto-clients', 'influxdb', 'victoria-metrics', 'chromium', 'postgresql-15', 'lintian'])
      expect(listed).toContain(pkg);
    expect(existsSync(join(chroot, 'usr/sbin/runuser'))).toBe(true);
    expect(listed).not.toContain('util-linux');
    expect(listed.every((pkg) => everyPackage.includes(pkg))).toBe(true);
  });

  it('as another user, stops with the one command to run', async () => {
    const r = await inChroot('nobody:nogroup', []);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^npm test: the tests need programs this machine lacks:\n {2}mosquitto +mosquitto: /);
    expect(r.stderr).toMatch(
      /Install them with:\n {2}sudo apt-get update && sudo apt-get install -y --no-install-recommends mosquitto .*chromium/,
    );
  });

  it('off Debian, stops and says so', async () => {
    rmSync(join(chroot, 'etc/debian_version'));
    const r = await inChroot('root:root', []);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/This is not Debian: install the equivalents of these Debian packages/);
  });
});
