// The SD-card image customiser on a synthetic image laid out as Raspberry Pi OS Lite's (a FAT boot
// partition at 4 MiB, an ext4 root after it), made here with sfdisk, mkfs.vfat and mke2fs -d: the
// output passes e2fsck, holds the files with their owners and modes and the enablement link, the
// root grew to make room, and the input is untouched. And the boot partition's edge-agent.yaml:
// taken when valid, refused with the reason when not.
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { customiseImage, missingImageTools } from '../../image/customise.js';
import { CLI, cleanup, startAgent, tempDir } from '../helpers/agent.js';
import { adminClient } from '../helpers/web.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const BOOT_START = 8192; // sectors: 4 MiB, as Raspberry Pi OS
const BOOT_SECTORS = (64 * MiB) / 512;
const ROOT_START = BOOT_START + BOOT_SECTORS;
const ROOT_BYTES = 64 * MiB;

const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const sfdiskParts = (image: string) =>
  (
    JSON.parse(execFileSync('sfdisk', ['--json', image], { encoding: 'utf8' })) as {
      partitiontable: { partitions: { start: number; size: number; type: string }[] };
    }
  ).partitiontable.partitions;

/** A Raspberry Pi OS Lite-like image: boot files on FAT, a root with /etc as the image has it. */
function syntheticImage(dir: string): string {
  const boot = join(dir, 'boot');
  mkdirSync(boot);
  writeFileSync(
    join(boot, 'cmdline.txt'),
    'console=serial0,115200 console=tty1 root=PARTUUID=abcd1234-02 rootfstype=ext4 fsck.repair=yes rootwait\n',
  );
  writeFileSync(join(boot, 'config.txt'), 'arm_64bit=1\n');
  const root = join(dir, 'root');
  for (const d of ['etc/systemd/system/multi-user.target.wants', 'etc/NetworkManager/system-connections', 'var/lib', 'root'])
    mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, 'etc/hostname'), 'raspberrypi\n');
  writeFileSync(join(root, 'etc/hosts'), '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n\n127.0.1.1\t\traspberrypi\n');
  const image = join(dir, 'raspios-lite.img');
  execFileSync('truncate', ['-s', String(ROOT_START * 512 + ROOT_BYTES), image]);
  execFileSync('sfdisk', ['--no-reread', '--no-tell-kernel', image], {
    input: `label: dos\nlabel-id: 0xabcd1234\nstart=${BOOT_START}, size=${BOOT_SECTORS}, type=c\nstart=${ROOT_START}, type=83\n`,
    stdio: ['pipe', 'ignore', 'inherit'],
  });
  execFileSync('mkfs.vfat', ['-F', '32', '-n', 'bootfs', '--offset', String(BOOT_START), image, String(BOOT_SECTORS / 2)], {
    stdio: 'ignore',
  });
  execFileSync('mcopy', ['-i', `${image}@@${BOOT_START * 512}`, join(boot, 'cmdline.txt'), join(boot, 'config.txt'), '::']);
  execFileSync('mke2fs', [
    '-q',
    '-t',
    'ext4',
    '-L',
    'rootfs',
    '-b',
    '4096',
    '-E',
    `offset=${ROOT_START * 512},root_owner=0:0`,
    '-d',
    root,
    image,
    String(ROOT_BYTES / 4096),
  ]);
  return image;
}

/** A small real .deb stands in for the agent's (the customiser only carries it). */
function smallDeb(dir: string): string {
  const root = join(dir, 'deb');
  mkdirSync(join(root, 'DEBIAN'), { recursive: true });
  chmodSync(join(root, 'DEBIAN'), 0o755); // dpkg-deb's requirement, whatever the umask
  writeFileSync(
    join(root, 'DEBIAN/control'),
    'Package: edge-agent\nVersion: 0.0.1\nArchitecture: arm64\nMaintainer: test <t@localhost>\nDescription: stand-in\n',
  );
  execFileSync('dpkg-deb', ['--root-owner-group', '--build', root, join(dir, 'edge-agent.deb')], { stdio: 'ignore' });
  return join(dir, 'edge-agent.deb');
}

describe('the SD-card image customiser', () => {
  let dir: string;
  let image: string;
  let deb: string;
  const agent = [process.execPath, CLI];
  beforeAll(() => {
    dir = tempDir('edge-agent-image-test-');
    image = syntheticImage(dir);
    deb = smallDeb(dir);
  });
  afterAll(() => cleanup(dir));

  const fs = (img: string) => `${img}?offset=${sfdiskParts(img)[1].start * 512}`;
  const debugfs = (img: string, request: string) =>
    execFileSync('debugfs', ['-R', request, fs(img)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  /** Owner, group and permission bits of a path in the image's root. */
  const stat = (img: string, path: string) => {
    const out = debugfs(img, `stat ${path}`);
    return {
      type: /Type: (\w+)/.exec(out)?.[1],
      mode: /Mode:\s+(\d+)/.exec(out)?.[1],
      uid: Number(/User:\s+(\d+)/.exec(out)?.[1]),
      gid: Number(/Group:\s+(\d+)/.exec(out)?.[1]),
    };
  };

  it('writes an image that installs the agent on first boot, with hostname, Wi-Fi, SSH key and admin password', () => {
    const config = join(dir, 'my-config.yaml');
    writeFileSync(config, 'agent: { id: greenhouse, dataDir: /var/lib/edge-agent }\nbroker: { mqtt: { port: 1883 } }\n');
    const out = join(dir, 'custom.img');
    const before = sha(image);
    execFileSync('openssl', ['ecparam', '-genkey', '-name', 'prime256v1', '-noout', '-out', join(dir, 'boot-sign.pem')]);
    execFileSync('openssl', ['ec', '-in', join(dir, 'boot-sign.pem'), '-pubout', '-out', join(dir, 'boot-sign.pub')], { stdio: 'ignore' });
    customiseImage({
      image,
      out,
      deb,
      config,
      hostname: 'greenhouse-1',
      wifi: { ssid: 'Farm WiFi', password: 'correct horse', country: 'GB' },
      sshKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOk test@laptop\n',
      adminPassword: 'first-admin-pw',
      bootConfigKey: join(dir, 'boot-sign.pub'),
      agent,
    });

    expect(sha(image)).toBe(before); // the stock image is untouched
    execFileSync('e2fsck', ['-fn', fs(out)], { stdio: 'ignore' }); // throws unless clean
    // The root grew to hold the install (the .deb and the room to unpack it).
    expect(sfdiskParts(out)[1].size).toBeGreaterThan(ROOT_BYTES / 512);
    expect(sfdiskParts(out)[0]).toMatchObject({ start: BOOT_START, size: BOOT_SECTORS });

    expect(stat(out, '/var/lib/edge-agent-firstboot')).toMatchObject({ type: 'directory', mode: '0700', uid: 0, gid: 0 });
    expect(debugfs(out, 'cat /var/lib/edge-agent-firstboot/boot-config.pub')).toBe(readFileSync(join(dir, 'boot-sign.pub'), 'utf8'));
    for (const f of ['edge-agent.deb', 'config.yaml', 'admin-password', 'authorized_keys', 'boot-config.pub'])
      expect(stat(out, `/var/lib/edge-agent-firstboot/${f}`), f).toMatchObject({ type: 'regular', mode: '0600', uid: 0, gid: 0 });
    expect(stat(out, '/var/lib/edge-agent-firstboot/firstboot.sh')).toMatchObject({ type: 'regular', mode: '0700', uid: 0 });
    expect(stat(out, '/etc/systemd/system/edge-agent-firstboot.service')).toMatchObject({ type: 'regular', mode: '0644', uid: 0 });
    expect(debugfs(out, 'stat /etc/systemd/system/multi-user.target.wants/edge-agent-firstboot.service')).toMatch(
      /Type: symlink[\s\S]*Fast link dest: "\/etc\/systemd\/system\/edge-agent-firstboot.service"/,
    );
    debugfs(out, `dump /var/lib/edge-agent-firstboot/edge-agent.deb ${join(dir, 'copied.deb')}`);
    expect(sha(join(dir, 'copied.deb'))).toBe(sha(deb));
    expect(debugfs(out, 'cat /var/lib/edge-agent-firstboot/config.yaml')).toBe(readFileSync(config, 'utf8'));
    expect(debugfs(out, 'cat /var/lib/edge-agent-firstboot/admin-password')).toBe('first-admin-pw\n');
    expect(debugfs(out, 'cat /etc/hostname')).toBe('greenhouse-1\n');
    const hosts = debugfs(out, 'cat /etc/hosts');
    expect(hosts).toMatch(/^127\.0\.1\.1\tgreenhouse-1$/m);
    expect(hosts).not.toContain('raspberrypi');
    expect(hosts).toContain('127.0.0.1\tlocalhost');
    expect(statSync(out).mode & 0o777).toBe(0o600); // it holds the Wi-Fi and admin passwords
    const wifi = '/etc/NetworkManager/system-connections/edge-agent-wifi-Farm_WiFi.nmconnection';
    expect(stat(out, wifi)).toMatchObject({ mode: '0600', uid: 0 });
    expect(debugfs(out, `cat ${wifi}`)).toMatch(/ssid=Farm WiFi[\s\S]*psk=correct horse/);
    // The boot partition: SSH on, the Wi-Fi country on the kernel's command line (which keeps the rest).
    const boot = `${out}@@${BOOT_START * 512}`;
    expect(execFileSync('mdir', ['-b', '-i', boot, '::'], { encoding: 'utf8' })).toMatch(/::\/ssh$/m);
    const cmdline = execFileSync('mtype', ['-i', boot, '::cmdline.txt'], { encoding: 'utf8' });
    expect(cmdline).toMatch(/root=PARTUUID=abcd1234-02 .*rootwait cfg80211\.ieee80211_regdom=GB\n$/);
  });

  it('takes hostile inputs as data: an SSID with newlines and sections, a password with backslashes, config paths with a space and a newline; refuses a country that is not one', () => {
    const spaced = join(dir, 'my config.yaml');
    const newline = join(dir, 'my\nconfig.yaml');
    for (const f of [spaced, newline]) writeFileSync(f, 'agent: { id: odd-path }\n');
    const ssid = 'Barn\n[ipv4]\nmethod=shared';
    const password = 'pa\\ss word\\';
    const out = join(dir, 'hostile.img');
    customiseImage({ image, out, deb, config: spaced, wifi: { ssid, password, country: 'DE' }, agent });
    const file = debugfs(out, 'cat /etc/NetworkManager/system-connections/edge-agent-wifi-Barn__ipv4__method_shared.nmconnection');
    expect(file.match(/^\[[a-z0-9-]+\]$/gm)).toEqual(['[connection]', '[wifi]', '[wifi-security]', '[ipv4]', '[ipv6]']);
    expect(file).toMatch(/^\[ipv4\]\nmethod=auto$/m);
    expect(file).not.toMatch(/^method=shared$/m); // only inside the escaped id=, never a line of its own
    const bytes = /^ssid=([\d;]+)$/m.exec(file)![1].split(';').filter(Boolean).map(Number);
    expect(Buffer.from(bytes).toString()).toBe(ssid);
    expect(/^psk=(.*)$/m.exec(file)![1]).toBe('pa\\\\ss word\\\\'); // GKeyFile: each backslash doubled
    expect(debugfs(out, 'cat /var/lib/edge-agent-firstboot/config.yaml')).toBe('agent: { id: odd-path }\n');
    const cmdline = execFileSync('mtype', ['-i', `${out}@@${BOOT_START * 512}`, '::cmdline.txt'], { encoding: 'utf8' });
    expect(cmdline).toMatch(/rootwait cfg80211\.ieee80211_regdom=DE\n$/);
    const second = join(dir, 'newline.img');
    customiseImage({ image, out: second, deb, config: newline, agent });
    expect(debugfs(second, 'cat /var/lib/edge-agent-firstboot/config.yaml')).toBe('agent: { id: odd-path }\n');

    const refusedOut = join(dir, 'refused.img');
    expect(() =>
      customiseImage({
        image,
        out: refusedOut,
        deb,
        config: spaced,
        wifi: { ssid: 'Farm', password: 'correct horse', country: 'GB init=/bin/sh' },
        agent,
      }),
    ).toThrow(/--wifi-country: "GB init=\/bin\/sh" is not an ISO 3166-1 country code/);
    expect(() =>
      customiseImage({ image, out: refusedOut, deb, config: spaced, wifi: { ssid: 'Farm', password: 'short', country: 'GB' }, agent }),
    ).toThrow(/--wifi-password-file/);
    expect(() =>
      customiseImage({
        image,
        out: refusedOut,
        deb,
        config: spaced,
        wifi: { ssid: 'x'.repeat(33), password: 'correct horse', country: 'GB' },
        agent,
      }),
    ).toThrow(/--wifi-ssid: 1 to 32 bytes/);
    expect(existsSync(refusedOut)).toBe(false);
    // Control: an SSID with spaces and Unicode goes in as its bytes and reads back whole.
    const unicode = join(dir, 'unicode.img');
    customiseImage({
      image,
      out: unicode,
      deb,
      config: spaced,
      wifi: { ssid: 'Café Ωmega 5G', password: 'correct horse', country: 'FR' },
      agent,
    });
    const uni = debugfs(unicode, 'cat /etc/NetworkManager/system-connections/edge-agent-wifi-Caf___mega_5G.nmconnection');
    expect(Buffer.from(/^ssid=([\d;]+)$/m.exec(uni)![1].split(';').filter(Boolean).map(Number)).toString()).toBe('Café Ωmega 5G');
  });

  it('makes a login user (userconf.txt, as Raspberry Pi Imager does); refuses an .img.xz and a bad user name; names missing tools with their packages', () => {
    const config = join(dir, 'user-config.yaml');
    writeFileSync(config, 'agent: { id: farm }\n');
    const out = join(dir, 'user.img');
    customiseImage({ image, out, deb, config, user: { name: 'farmer', password: 'sow-in-spring' }, agent });
    const userconf = execFileSync('mtype', ['-i', `${out}@@${BOOT_START * 512}`, '::userconf.txt'], { encoding: 'utf8' });
    const [name, hash] = userconf.trim().split(':');
    expect(name).toBe('farmer');
    const salt = hash.split('$')[2];
    expect(execFileSync('openssl', ['passwd', '-6', '-salt', salt, 'sow-in-spring'], { encoding: 'utf8' }).trim()).toBe(hash); // the password, SHA-512 crypt
    expect(userconf).not.toContain('sow-in-spring');

    writeFileSync(join(dir, 'small.img'), 'not really an image');
    execFileSync('xz', ['-kf', join(dir, 'small.img')]);
    expect(() => customiseImage({ image: join(dir, 'small.img.xz'), out: join(dir, 'x.img'), deb, config, agent })).toThrow(
      /is xz-compressed.*xz -dk/,
    );
    expect(() =>
      customiseImage({ image, out: join(dir, 'x.img'), deb, config, user: { name: 'Root Admin', password: 'x' }, agent }),
    ).toThrow(/--user: "Root Admin" is not a Linux user name/);
    expect(existsSync(join(dir, 'x.img'))).toBe(false);
    expect(missingImageTools((t) => !['debugfs', 'mcopy'].includes(t))).toBe(
      'missing debugfs, mcopy: on Debian or Ubuntu, sudo apt install e2fsprogs mtools',
    );
    expect(missingImageTools(() => true)).toBeUndefined();
  });

  it('refuses a config the agent would refuse, naming the key, and writes nothing', () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'broker: { mqtt: { port: "eighty" } }\n');
    const out = join(dir, 'never.img');
    expect(() => customiseImage({ image, out, deb, config: bad, agent })).toThrow(
      /--config .*bad\.yaml: .*broker\.mqtt\.port: must be integer/s,
    );
    expect(existsSync(out)).toBe(false);
    expect(() => customiseImage({ image, out, deb, config: join(dir, 'my-config.yaml'), hostname: 'no_underscores', agent })).toThrow(
      /--hostname/,
    );
  });
});

describe('edge-agent.yaml on the boot partition', () => {
  const script = resolve(import.meta.dirname, '../../image/files/apply-boot-config.sh');
  const verify = resolve(import.meta.dirname, '../../image/files/verify-boot-config.sh');
  let dir: string;
  beforeAll(() => {
    dir = tempDir();
    writeFileSync(join(dir, 'edge-agent'), `#!/bin/sh\nexec ${process.execPath} ${CLI} "$@"\n`);
    chmodSync(join(dir, 'edge-agent'), 0o755);
    mkdirSync(join(dir, 'boot'), { recursive: true });
    mkdirSync(join(dir, 'state'), { recursive: true });
  });
  afterAll(() => cleanup(dir));
  const env = (extra: Record<string, string> = {}) => ({
    ...process.env,
    BOOT_DIR: join(dir, 'boot'),
    CONFIG_FILE: join(dir, 'config.yaml'),
    AGENT_BIN: join(dir, 'edge-agent'),
    STATE_DIR: join(dir, 'state'),
    BOOT_CONFIG_KEY: join(dir, 'no-key.pub'),
    ...extra,
  });
  const apply = (extra?: Record<string, string>) => run('sh', [script], { env: env(extra) });
  const onCard = () => readdirSync(join(dir, 'boot')).sort();
  const card = (name: string) => readFileSync(join(dir, 'boot', name), 'utf8');
  const SECRET = 'PgSecret-123';
  const withSecret = (id: string) =>
    `agent: { id: ${id} }\nsinks: [{ name: db, type: postgres, url: "postgres://edge:${SECRET}@db.example/x" }]\n`;

  it('a valid one becomes the config, on trial, the old one kept as the last good; an invalid one changes nothing; no secret stays on the card', async () => {
    writeFileSync(join(dir, 'config.yaml'), 'agent: { id: old }\n');
    writeFileSync(join(dir, 'boot/edge-agent.yaml'), `${withSecret('bad')}web: { http: { port: -1 } }\n`);
    const refused = await apply();
    expect(refused.stderr).toMatch(/not applied: not valid: .*web\.http\.port/s);
    expect(readFileSync(join(dir, 'config.yaml'), 'utf8')).toBe('agent: { id: old }\n');
    expect(onCard()).toEqual(['edge-agent.yaml.rejected.txt']);
    expect(card('edge-agent.yaml.rejected.txt')).toMatch(/not applied: not valid: .*web\.http\.port/);
    expect(card('edge-agent.yaml.rejected.txt')).not.toContain(SECRET);
    expect(statSync(join(dir, 'state/boot-config.rejected.yaml')).mode & 0o777).toBe(0o600);

    writeFileSync(join(dir, 'boot/edge-agent.yaml'), withSecret('new'));
    const taken = await apply();
    expect(taken.stdout).toContain('is the config now, on trial');
    expect(readFileSync(join(dir, 'config.yaml'), 'utf8')).toBe(withSecret('new'));
    expect(readFileSync(join(dir, 'config.yaml.last-good'), 'utf8')).toBe('agent: { id: old }\n');
    expect(existsSync(join(dir, 'state/boot-config.on-trial'))).toBe(true);
    expect(onCard()).toEqual(['edge-agent.yaml.applied.txt']);
    expect(card('edge-agent.yaml.applied.txt')).toMatch(/applied \(sha256 [0-9a-f]{64}\)/);
    expect(card('edge-agent.yaml.applied.txt')).not.toContain(SECRET);
  });

  it('with a key installed, takes only a config signed with it', async () => {
    execFileSync('openssl', ['ecparam', '-genkey', '-name', 'prime256v1', '-noout', '-out', join(dir, 'sign.pem')]);
    execFileSync('openssl', ['ec', '-in', join(dir, 'sign.pem'), '-pubout', '-out', join(dir, 'sign.pub')], { stdio: 'ignore' });
    execFileSync('openssl', ['ecparam', '-genkey', '-name', 'prime256v1', '-noout', '-out', join(dir, 'other.pem')]);
    const keyed = { BOOT_CONFIG_KEY: join(dir, 'sign.pub') };
    const yaml = join(dir, 'boot/edge-agent.yaml');
    const sign = (key: string) => execFileSync('openssl', ['dgst', '-sha256', '-sign', join(dir, key), '-out', `${yaml}.sig`, yaml]);
    writeFileSync(join(dir, 'config.yaml'), 'agent: { id: before-signing }\n');

    writeFileSync(yaml, 'agent: { id: unsigned }\n');
    expect((await apply(keyed)).stderr).toMatch(/not signed/);
    writeFileSync(yaml, 'agent: { id: wrong-key }\n');
    sign('other.pem');
    expect((await apply(keyed)).stderr).toMatch(/signature does not match/);
    writeFileSync(yaml, 'agent: { id: changed }\n');
    sign('sign.pem');
    writeFileSync(yaml, 'agent: { id: changed-after-signing }\n');
    expect((await apply(keyed)).stderr).toMatch(/signature does not match/);
    expect(readFileSync(join(dir, 'config.yaml'), 'utf8')).toBe('agent: { id: before-signing }\n');
    // Control: signed with the key, taken; the signature goes from the card too.
    writeFileSync(yaml, 'agent: { id: signed }\n');
    sign('sign.pem');
    expect((await apply(keyed)).stdout).toContain('is the config now');
    expect(readFileSync(join(dir, 'config.yaml'), 'utf8')).toBe('agent: { id: signed }\n');
    expect(onCard()).toEqual(['edge-agent.yaml.applied.txt']);
  });

  // This machine runs no systemd: a stand-in systemctl says whether the agent is active and records restarts.
  function fakeSystemctl(active: boolean): string {
    const path = join(dir, active ? 'systemctl-up' : 'systemctl-down');
    writeFileSync(path, `#!/bin/sh\necho "$*" >>${join(dir, 'systemctl.calls')}\n[ "$1" = is-active ] && exit ${active ? 0 : 3}\nexit 0\n`);
    chmodSync(path, 0o755);
    return path;
  }
  const check = (systemctl: string) =>
    run('sh', [verify], { env: env({ SYSTEMCTL: systemctl, WAIT_SEC: '4', STABLE_SEC: '2' }) }).catch(
      (err: { stdout: string; stderr: string }) => err,
    );

  it('keeps a config on trial once the agent runs with it; goes back to the last good one when it does not, and says so', async () => {
    writeFileSync(join(dir, 'config.yaml.last-good'), 'agent: { id: good }\n');
    writeFileSync(join(dir, 'config.yaml'), 'agent: { id: trial-1 }\n');
    writeFileSync(join(dir, 'state/boot-config.on-trial'), 'now\n');
    expect((await check(fakeSystemctl(true))).stdout).toContain('kept');
    expect(readFileSync(join(dir, 'config.yaml'), 'utf8')).toBe('agent: { id: trial-1 }\n');
    expect(existsSync(join(dir, 'state/boot-config.on-trial'))).toBe(false);

    writeFileSync(join(dir, 'config.yaml'), 'agent: { id: trial-2 }\n');
    writeFileSync(join(dir, 'state/boot-config.on-trial'), 'now\n');
    writeFileSync(join(dir, 'systemctl.calls'), '');
    expect((await check(fakeSystemctl(false))).stderr).toMatch(/did not start and run for 2 s within 4 s.*last good config is back/);
    expect(readFileSync(join(dir, 'config.yaml'), 'utf8')).toBe('agent: { id: good }\n');
    expect(readFileSync(join(dir, 'systemctl.calls'), 'utf8')).toMatch(/^restart edge-agent\.service$/m);
    const note = JSON.parse(readFileSync(join(dir, 'state/boot-config-rollback.json'), 'utf8')) as { at: string; reason: string };
    expect(note.reason).toMatch(/did not start/);

    // The agent, started on that data directory, says so: an alert the page shows.
    const agentDir = tempDir();
    try {
      mkdirSync(join(agentDir, 'data'), { recursive: true });
      copyFileSync(join(dir, 'state/boot-config-rollback.json'), join(agentDir, 'data/boot-config-rollback.json'));
      const agent = await startAgent({ health: { alerts: { intervalSec: 1 } } }, agentDir);
      try {
        const api = adminClient(agent);
        await expect
          .poll(
            async () =>
              ((await api.get('/api/alerts')).body.active as { name: string; message: string }[]).find(
                (a) => a.name === 'boot-config-rolled-back',
              )?.message,
            { timeout: 5000 },
          )
          .toMatch(/rolled back: the agent did not start/);
      } finally {
        await agent.stop();
      }
    } finally {
      cleanup(agentDir);
    }
    // Nothing on trial: the check does nothing (and asks systemd nothing).
    writeFileSync(join(dir, 'systemctl.calls'), '');
    await check(fakeSystemctl(false));
    expect(readFileSync(join(dir, 'systemctl.calls'), 'utf8')).toBe('');
  });
});
