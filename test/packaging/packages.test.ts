// The packages, built here beside debootstrap: the single executable (its addons cached in
// .cache/binary; on a clean clone better-sqlite3 and epoll are compiled for the embedded Node, SQLite
// itself linked from what npm ci compiled) reports its Node, passes the smoke test (MQTT in, HTTP API
// out, PostgreSQL), hands its start-up pages back, and loads native code only from a private folder; the systemd unit verifies and is hardened; the .deb installs,
// upgrades, is removed and purged in a Debian chroot (debootstrap from the machine's mirror).
import { execFile, execFileSync, spawn } from 'node:child_process';
import {
  appendFileSync,
  chmodSync,
  copyFileSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBinary, EMBEDDED_NODE } from '../../scripts/binary/build.js';
import { unitEnvironment } from '../../scripts/production-node.js';
import { projectRoot } from '../../scripts/project-root.js';
import { buildDeb } from '../../scripts/binary/deb.js';
import { manPage } from '../../scripts/binary/man-page.js';
import { smokeTest } from '../../scripts/binary/smoke.js';
import { loadMaps, mapStack } from '../../scripts/map-stack.js';
import { VERSION } from '../../agent/lib/version.js';
import { CLI, cleanup, tempDir, writeConfig } from '../helpers/agent.js';
import { debianChroot } from '../helpers/chroot.js';
import { frameAt, lineOf } from '../helpers/stack.js';

const run = promisify(execFile);
const ROOT = projectRoot();

let binary: string;
let chroot: string;
/** The .deb as it ships but for xz's level (1, not 6: a minute of CPU less), built as soon as the binary is. */
let shipped: Promise<string>;
// The builds (CPU) and debootstrap (mostly the mirror) side by side: they are most of this file's time.
beforeAll(async () => {
  const built = buildBinary('x64');
  shipped = built.then(() => buildDeb('amd64', { compression: 'fast-xz' }));
  shipped.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
  [binary, chroot] = await Promise.all([built, debianChroot()]);
}, 900_000);
afterAll(() => chroot && cleanup(chroot));

describe('the single executable (x64)', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach(cleanup));

  it('says its version, the Node it embeds and its architecture', async () => {
    const { stdout } = await run(binary, ['--version']);
    expect(stdout.trim()).toMatch(
      new RegExp(`^\\d+\\.\\d+\\.\\d+ \\(Node v${EMBEDDED_NODE.replaceAll('.', '\\.')}, linux-x64, single executable\\)$`),
    );
  });

  it('passes the smoke test: a reading published over MQTT is read back over HTTP and forwarded to PostgreSQL', async () => {
    const r = await smokeTest([binary]);
    expect(r.version).toContain(`Node v${EMBEDDED_NODE}`);
    expect(r.readyMs).toBeGreaterThan(0);
  }, 180_000);

  it('leaves the source maps of its two scripts beside it (not in it): npm run map-stack names their places', () => {
    const maps = loadMaps(`${binary}.maps`);
    // The scripts the binary embeds, as the build left them (a stack trace names main.cjs and db-host.cjs).
    const work = join(ROOT, '.cache/binary/work-x64');
    for (const [script, source, literal] of [
      ['main.cjs', 'agent/cli.ts', 'second signal, exiting now'],
      ['workers/db-host.cjs', 'agent/consume/db/db-thread.ts', 'large_object_space'],
    ]) {
      const frame = frameAt(join(work, script), `"${literal}"`);
      expect(frame).not.toContain(source); // control
      expect(mapStack(frame, maps)).toMatch(
        new RegExp(`^    at x \\(${source.replaceAll('.', '\\.')}:${lineOf(source, literal)}:\\d+\\)$`),
      );
    }
  });

  it('writes its native code to a folder of its own (0700) and refuses one others may write to', async () => {
    const cache = tempDir();
    dirs.push(cache);
    await run(binary, ['--version'], { env: { ...process.env, XDG_CACHE_HOME: cache } });
    const folder = join(cache, 'edge-agent');
    expect(statSync(folder).mode & 0o777).toBe(0o700);
    // The control above loaded from a private folder; a folder others may write to is refused, with the reason.
    const open = tempDir();
    dirs.push(open);
    mkdirSync(join(open, 'edge-agent'), { mode: 0o777 });
    chmodSync(join(open, 'edge-agent'), 0o777);
    const refused = await run(binary, ['--version'], { env: { ...process.env, XDG_CACHE_HOME: open } }).then(
      () => null,
      (err: { code: number; stderr: string }) => err,
    );
    expect(refused?.code).not.toBe(0);
    expect(refused?.stderr).toMatch(/not a folder of this user's alone; native code is not loaded from it/);
  });
});

describe('the single executable at rest', () => {
  it('hands its start-up file pages back to the kernel: a second after ready (agent.pageOutAfter) it holds less than half of them', async () => {
    const dir = tempDir();
    const env = unitEnvironment(readFileSync(join(ROOT, 'systemd/edge-agent.service'), 'utf8'));
    const agent = spawn(binary, ['run', '--config', writeConfig(dir)], {
      env: { ...process.env, ...env, EDGE_AGENT_LOG__LEVEL: 'info', EDGE_AGENT_AGENT__PAGE_OUT_AFTER: '1s' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const line = await new Promise<{ fileRssKb: { before: number; after: number }; failed: number }>((resolve, reject) => {
        createInterface({ input: agent.stdout! }).on('line', (l) => l.includes('start-up pages handed back') && resolve(JSON.parse(l)));
        agent.on('exit', (code) => reject(new Error(`the agent exited (${code}) before handing pages back`)));
      });
      expect(line.failed).toBe(0);
      expect(line.fileRssKb.after).toBeLessThan(line.fileRssKb.before / 2);
    } finally {
      agent.kill('SIGKILL');
      cleanup(dir);
    }
  }, 60_000);
});

describe('the systemd unit', () => {
  const unit = join(ROOT, 'systemd/edge-agent.service');
  // verify runs man for each Documentation= page: the units name edge-agent(1), which the .deb ships.
  const manDir = tempDir();
  mkdirSync(join(manDir, 'man1'));
  writeFileSync(
    join(manDir, 'man1/edge-agent.1'),
    manPage(VERSION, (args) => execFileSync(process.execPath, [CLI, ...args], { encoding: 'utf8' })),
  );
  const verify = (path: string) => run('systemd-analyze', ['verify', path], { env: { ...process.env, MANPATH: manDir } });
  afterAll(() => cleanup(manDir));
  /** The unit as installed, its ExecStart pointing at the built binary (verify checks the command exists). */
  function installedCopy(): string {
    const dir = tempDir();
    const copy = join(dir, 'edge-agent.service');
    writeFileSync(copy, readFileSync(unit, 'utf8').replaceAll('/usr/bin/edge-agent', join(ROOT, 'dist/edge-agent-linux-x64')));
    return copy;
  }

  it('runs Node with the flags and environment `npm start` uses, and bounds its memory', () => {
    const text = readFileSync(unit, 'utf8');
    const env = unitEnvironment(text);
    const start = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start;
    const startFlags = start.split(' ').filter((w) => w.startsWith('--'));
    expect(startFlags.length).toBeGreaterThan(0);
    expect(env.NODE_OPTIONS?.split(' ')).toEqual(startFlags);
    const variables = Object.entries(env).filter(([k]) => k !== 'NODE_OPTIONS');
    expect(variables.map(([k]) => k)).toContain('MALLOC_ARENA_MAX');
    for (const [k, v] of variables) expect(start).toContain(`${k}=${v} `);
    expect(text).toMatch(/^MemoryHigh=\d+M$/m);
    expect(text).toMatch(/^MemoryMax=\d+M$/m);
  });

  it('passes systemd-analyze verify (only the back-off keys of systemd 254+ unknown to older ones)', async () => {
    const copy = installedCopy();
    try {
      const { stderr } = await verify(copy);
      const version = Number(/systemd (\d+)/.exec((await run('systemd-analyze', ['--version'])).stdout)![1]);
      const complaints = stderr.split('\n').filter(Boolean);
      const tolerated = version < 254 ? /Unknown key '(RestartSteps|RestartMaxDelaySec)' in section \[Service\], ignoring\.$/ : /^$/;
      expect(complaints.filter((l) => !tolerated.test(l))).toEqual([]);
    } finally {
      cleanup(join(copy, '..'));
    }
  });

  it('the first-boot and boot-config units verify too', async () => {
    const dir = tempDir();
    try {
      const units = [
        ['edge-agent-bootconfig.service', '/usr/lib/edge-agent/apply-boot-config', 'image/files/apply-boot-config.sh'],
        ['edge-agent-bootconfig-verify.service', '/usr/lib/edge-agent/verify-boot-config', 'image/files/verify-boot-config.sh'],
        ['edge-agent-firstboot.service', '/var/lib/edge-agent-firstboot/firstboot.sh', 'image/files/edge-agent-firstboot.sh'],
      ];
      for (const [name, installed, source] of units) {
        const text = readFileSync(join(ROOT, 'image/files', name), 'utf8');
        expect(text).toContain(installed);
        writeFileSync(join(dir, name), text.replace(installed, join(ROOT, source)));
        const { stderr } = await verify(join(dir, name));
        expect(stderr, name).toBe('');
      }
    } finally {
      cleanup(dir);
    }
  });

  it('is hardened: systemd-analyze security exposes at most 2.5', async () => {
    const copy = installedCopy();
    try {
      const { stdout } = await run('systemd-analyze', ['security', '--offline=true', copy]);
      const exposure = Number(/Overall exposure level for .*: (\d+\.\d+)/.exec(stdout)![1]);
      expect(exposure).toBeLessThanOrEqual(2.5);
      for (const line of [
        'Type=notify',
        'WatchdogSec=',
        'Restart=always',
        'User=edge-agent',
        'StateDirectory=edge-agent',
        'ConfigurationDirectory=edge-agent',
        'ProtectSystem=strict',
        'CapabilityBoundingSet=\n',
        'SystemCallFilter=@system-service',
        'SystemCallFilter=setpriority',
        'DeviceAllow=char-gpiochip',
      ]) {
        expect(readFileSync(unit, 'utf8')).toContain(line);
      }
    } finally {
      cleanup(join(copy, '..'));
    }
  });
});

/** What lintian says of a package, all of it (the test below reads it). */
const lintian = (deb: string) =>
  run('lintian', ['--fail-on', 'none', '--display-info', '--pedantic', '--show-overrides', '--tag-display-limit', '0', deb], {
    maxBuffer: 64 * 1024 * 1024,
  }).then(({ stdout }) => stdout);

describe('the .deb (amd64) in a Debian chroot', () => {
  let first: string;
  let linted: Promise<string>;
  const inChroot = (program: string, args: string[]) =>
    run('chroot', [chroot, program, ...args], { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', DEBIAN_FRONTEND: 'noninteractive' } });
  /** Whether a path is there inside the chroot (a link counts as itself: its absolute target is the chroot's). */
  const exists = (path: string) => {
    try {
      lstatSync(join(chroot, path));
      return true;
    } catch {
      return false;
    }
  };

  beforeAll(async () => {
    first = await shipped;
    // lintian reads the package while the chroot installs it (each takes a minute on a busy machine).
    linted = lintian(first);
    linted.catch(() => undefined); // awaited by its test; not an unhandled rejection meanwhile
  }, 300_000);

  it('installs, upgrades keeping config and data, is removed and purged as dh_installsystemd would have it', async () => {
    copyFileSync(first, join(chroot, 'tmp/first.deb'));
    await inChroot('groupadd', ['--system', 'gpio']); // as Raspberry Pi OS has it
    await inChroot('dpkg', ['-i', '/tmp/first.deb']);
    expect((await inChroot('id', ['-nG', 'edge-agent'])).stdout.trim().split(' ').sort()).toEqual(['edge-agent', 'gpio']);

    // Installed: the user, its private data folder, the config as a conffile for root and the agent, the unit enabled.
    const passwd = (await inChroot('getent', ['passwd', 'edge-agent'])).stdout;
    expect(passwd).toMatch(/^edge-agent:x:\d+:\d+:[^:]*:\/var\/lib\/edge-agent:\/usr\/sbin\/nologin$/m);
    const uid = Number(passwd.split(':')[2]);
    const data = statSync(join(chroot, 'var/lib/edge-agent'));
    expect([data.uid, data.mode & 0o777]).toEqual([uid, 0o700]);
    const config = statSync(join(chroot, 'etc/edge-agent/config.yaml'));
    expect([config.uid, config.mode & 0o777]).toEqual([0, 0o640]);
    expect((await inChroot('dpkg-query', ['-W', '-f=${Conffiles}', 'edge-agent'])).stdout).toContain('/etc/edge-agent/config.yaml');
    const wants = 'etc/systemd/system/multi-user.target.wants/edge-agent.service';
    expect(lstatSync(join(chroot, wants)).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(chroot, wants))).toBe('/lib/systemd/system/edge-agent.service');
    expect(readlinkSync(join(chroot, 'etc/systemd/system/multi-user.target.wants/edge-agent-bootconfig.service'))).toBe(
      '/lib/systemd/system/edge-agent-bootconfig.service',
    );
    expect(readlinkSync(join(chroot, 'etc/systemd/system/multi-user.target.wants/edge-agent-bootconfig-verify.service'))).toBe(
      '/lib/systemd/system/edge-agent-bootconfig-verify.service',
    );
    for (const script of ['apply-boot-config', 'verify-boot-config'])
      expect(statSync(join(chroot, 'usr/lib/edge-agent', script)).mode & 0o777).toBe(0o755);
    // What lintian looks for: a man page, a Debian changelog, overrides that say why.
    expect(gunzipSync(readFileSync(join(chroot, 'usr/share/man/man1/edge-agent.1.gz'))).toString()).toMatch(/^\.TH EDGE-AGENT 1 /);
    expect(gunzipSync(readFileSync(join(chroot, 'usr/share/doc/edge-agent/changelog.gz'))).toString()).toMatch(
      /^edge-agent \(.+\) stable; urgency=medium/,
    );
    expect(readFileSync(join(chroot, 'var/lib/dpkg/info/edge-agent.md5sums'), 'utf8')).toMatch(/^[0-9a-f]{32}  usr\/bin\/edge-agent$/m);
    expect((await inChroot('dpkg', ['--verify', 'edge-agent'])).stdout).toBe(''); // every file as its md5sums say
    expect(readFileSync(join(chroot, 'usr/share/lintian/overrides/edge-agent'), 'utf8')).toMatch(
      /^edge-agent: unstripped-binary-or-object /m,
    );
    expect((await inChroot('/usr/bin/edge-agent', ['--version'])).stdout).toContain(`${VERSION} (Node v${EMBEDDED_NODE}`);
    // The agent's user can read its config, and the config is valid.
    const check = await run('chroot', [
      '--userspec=edge-agent:edge-agent',
      chroot,
      '/usr/bin/env',
      'HOME=/var/lib/edge-agent',
      '/usr/bin/edge-agent',
      'config',
      'check',
      '--config',
      '/etc/edge-agent/config.yaml',
    ]);
    expect(check.stdout).toContain('config ok');

    // An upgrade keeps a changed config and the data.
    appendFileSync(join(chroot, 'etc/edge-agent/config.yaml'), '# changed by the user\n');
    chmodSync(join(chroot, 'etc/edge-agent/config.yaml'), 0o600); // the admin's choice: root only
    writeFileSync(join(chroot, 'var/lib/edge-agent/readings.marker'), 'kept');
    const second = await buildDeb('amd64', { version: `${VERSION}+upgrade1`, compression: 'fast-gzip' });
    copyFileSync(second, join(chroot, 'tmp/second.deb'));
    await inChroot('dpkg', ['-i', '--force-confold', '/tmp/second.deb']);
    expect((await inChroot('dpkg-query', ['-W', '-f=${Version}', 'edge-agent'])).stdout).toBe(`${VERSION}+upgrade1`);
    expect(readFileSync(join(chroot, 'etc/edge-agent/config.yaml'), 'utf8')).toContain('# changed by the user');
    expect(statSync(join(chroot, 'etc/edge-agent/config.yaml')).mode & 0o777).toBe(0o600); // kept, not reset to 0640
    expect(readFileSync(join(chroot, 'var/lib/edge-agent/readings.marker'), 'utf8')).toBe('kept');
    expect(exists(wants)).toBe(true);

    // Removed: the program goes; config, data and the user stay.
    await inChroot('dpkg', ['-r', 'edge-agent']);
    expect(exists('usr/bin/edge-agent')).toBe(false);
    expect(exists('etc/edge-agent/config.yaml')).toBe(true);
    expect(exists('var/lib/edge-agent/readings.marker')).toBe(true);
    expect((await inChroot('getent', ['passwd', 'edge-agent'])).stdout).toContain('edge-agent');

    // Purged: nothing of it is left.
    await inChroot('dpkg', ['-P', 'edge-agent']);
    for (const path of [
      'etc/edge-agent',
      'var/lib/edge-agent',
      wants,
      'etc/systemd/system/multi-user.target.wants/edge-agent-bootconfig.service',
      'etc/systemd/system/multi-user.target.wants/edge-agent-bootconfig-verify.service',
      'var/lib/systemd/deb-systemd-helper-enabled/edge-agent.service.dsh-also',
    ])
      expect(exists(path), path).toBe(false);
    expect(
      await inChroot('getent', ['passwd', 'edge-agent']).then(
        () => 'found',
        () => 'gone',
      ),
    ).toBe('gone');
  }, 600_000);

  it("lintian (Debian's, pedantic) has nothing to say but the overrides, each with its reason", async () => {
    const stdout = await linted; // of the package as it ships (xz, at level 1), started before the chroot installed it
    const tags = stdout.split('\n').filter((line) => /^[A-Z]: /.test(line) && !line.startsWith('N: '));
    expect(tags.filter((t) => !t.startsWith('O: '))).toEqual([]);
    // The control: what lintian would say is there, overridden (O:), each after a note (N:) that says why.
    const overridden = new Set(tags.map((t) => /^O: edge-agent: (\S+)/.exec(t)?.[1]));
    expect([...overridden].sort()).toEqual([
      'embedded-library',
      'hardening-no-fortify-functions',
      'hardening-no-pie',
      'non-standard-file-perm',
      'package-supports-alternative-init-but-no-init.d-script',
      'spelling-error-in-binary',
      'unstripped-binary-or-object',
    ]);
    expect(stdout).toMatch(/^N: A Node\.js single executable/m);
  }, 300_000);
});
