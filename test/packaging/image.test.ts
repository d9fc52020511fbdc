// The SD-card image customiser on a synthetic image laid out as Raspberry Pi OS Lite's (a FAT boot
// partition at 4 MiB, an ext4 root after it), made here with sfdisk, mkfs.vfat and mke2fs -d: the
// output passes e2fsck, holds the files with their owners and modes and the enablement link, the
// root grew to make room, and the input is untouched. And the boot partition's edge-agent.yaml:
// taken when valid, refused with the reason when not.
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { customiseImage } from '../../image/customise.js';
import { CLI, cleanup, tempDir } from '../helpers/agent.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const BOOT_START = 8192; // sectors: 4 MiB, as Raspberry Pi OS
const BOOT_SECTORS = (64 * MiB) / 512;
const ROOT_START = BOOT_START + BOOT_SECTORS;
const ROOT_BYTES = 64 * MiB;

const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const sfdiskParts = (image: string) => (JSON.parse(execFileSync('sfdisk', ['--json', image], { encoding: 'utf8' })) as { partitiontable: { partitions: { start: number; size: number; type: string }[] } }).partitiontable.partitions;

/** A Raspberry Pi OS Lite-like image: boot files on FAT, a root with /etc as the image has it. */
function syntheticImage(dir: string): string {
  const boot = join(dir, 'boot');
  mkdirSync(boot);
  writeFileSync(join(boot, 'cmdline.txt'), 'console=serial0,115200 console=tty1 root=PARTUUID=abcd1234-02 rootfstype=ext4 fsck.repair=yes rootwait\n');
  writeFileSync(join(boot, 'config.txt'), 'arm_64bit=1\n');
  const root = join(dir, 'root');
  for (const d of ['etc/systemd/system/multi-user.target.wants', 'etc/NetworkManager/system-connections', 'var/lib', 'root']) mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, 'etc/hostname'), 'raspberrypi\n');
  writeFileSync(join(root, 'etc/hosts'), '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n\n127.0.1.1\t\traspberrypi\n');
  const image = join(dir, 'raspios-lite.img');
  execFileSync('truncate', ['-s', String(ROOT_START * 512 + ROOT_BYTES), image]);
  execFileSync('sfdisk', ['--no-reread', '--no-tell-kernel', image], { input: `label: dos\nlabel-id: 0xabcd1234\nstart=${BOOT_START}, size=${BOOT_SECTORS}, type=c\nstart=${ROOT_START}, type=83\n`, stdio: ['pipe', 'ignore', 'inherit'] });
  execFileSync('mkfs.vfat', ['-F', '32', '-n', 'bootfs', '--offset', String(BOOT_START), image, String(BOOT_SECTORS / 2)], { stdio: 'ignore' });
  execFileSync('mcopy', ['-i', `${image}@@${BOOT_START * 512}`, join(boot, 'cmdline.txt'), join(boot, 'config.txt'), '::']);
  execFileSync('mke2fs', ['-q', '-t', 'ext4', '-L', 'rootfs', '-b', '4096', '-E', `offset=${ROOT_START * 512},root_owner=0:0`, '-d', root, image, String(ROOT_BYTES / 4096)]);
  return image;
}

/** A small real .deb stands in for the agent's (the customiser only carries it). */
function smallDeb(dir: string): string {
  const root = join(dir, 'deb');
  mkdirSync(join(root, 'DEBIAN'), { recursive: true });
  writeFileSync(join(root, 'DEBIAN/control'), 'Package: edge-agent\nVersion: 0.0.1\nArchitecture: arm64\nMaintainer: test <t@localhost>\nDescription: stand-in\n');
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
  const debugfs = (img: string, request: string) => execFileSync('debugfs', ['-R', request, fs(img)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  /** Owner, group and permission bits of a path in the image's root. */
  const stat = (img: string, path: string) => {
    const out = debugfs(img, `stat ${path}`);
    return { type: /Type: (\w+)/.exec(out)?.[1], mode: /Mode:\s+(\d+)/.exec(out)?.[1], uid: Number(/User:\s+(\d+)/.exec(out)?.[1]), gid: Number(/Group:\s+(\d+)/.exec(out)?.[1]) };
  };

  it('writes an image that installs the agent on first boot, with hostname, Wi-Fi, SSH key and admin password', () => {
    const config = join(dir, 'my-config.yaml');
    writeFileSync(config, 'agent: { id: greenhouse, dataDir: /var/lib/edge-agent }\nbroker: { mqtt: { port: 1883 } }\n');
    const out = join(dir, 'custom.img');
    const before = sha(image);
    customiseImage({ image, out, deb, config, hostname: 'greenhouse-1', wifi: { ssid: 'Farm WiFi', password: 'correct horse', country: 'GB' }, sshKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOk test@laptop\n', adminPassword: 'first-admin-pw', agent });

    expect(sha(image)).toBe(before); // the stock image is untouched
    execFileSync('e2fsck', ['-fn', fs(out)], { stdio: 'ignore' }); // throws unless clean
    // The root grew to hold the install (the .deb and the room to unpack it).
    expect(sfdiskParts(out)[1].size).toBeGreaterThan(ROOT_BYTES / 512);
    expect(sfdiskParts(out)[0]).toMatchObject({ start: BOOT_START, size: BOOT_SECTORS });

    expect(stat(out, '/var/lib/edge-agent-firstboot')).toMatchObject({ type: 'directory', mode: '0700', uid: 0, gid: 0 });
    for (const f of ['edge-agent.deb', 'config.yaml', 'admin-password', 'authorized_keys']) expect(stat(out, `/var/lib/edge-agent-firstboot/${f}`), f).toMatchObject({ type: 'regular', mode: '0600', uid: 0, gid: 0 });
    expect(stat(out, '/var/lib/edge-agent-firstboot/firstboot.sh')).toMatchObject({ type: 'regular', mode: '0700', uid: 0 });
    expect(stat(out, '/etc/systemd/system/edge-agent-firstboot.service')).toMatchObject({ type: 'regular', mode: '0644', uid: 0 });
    expect(debugfs(out, 'stat /etc/systemd/system/multi-user.target.wants/edge-agent-firstboot.service')).toMatch(/Type: symlink[\s\S]*Fast link dest: "\/etc\/systemd\/system\/edge-agent-firstboot.service"/);
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
    expect(() => customiseImage({ image, out: refusedOut, deb, config: spaced, wifi: { ssid: 'Farm', password: 'correct horse', country: 'GB init=/bin/sh' }, agent })).toThrow(/--wifi-country: "GB init=\/bin\/sh" is not an ISO 3166-1 country code/);
    expect(() => customiseImage({ image, out: refusedOut, deb, config: spaced, wifi: { ssid: 'Farm', password: 'short', country: 'GB' }, agent })).toThrow(/--wifi-password-file/);
    expect(() => customiseImage({ image, out: refusedOut, deb, config: spaced, wifi: { ssid: 'x'.repeat(33), password: 'correct horse', country: 'GB' }, agent })).toThrow(/--wifi-ssid: 1 to 32 bytes/);
    expect(existsSync(refusedOut)).toBe(false);
    // Control: an SSID with spaces and Unicode goes in as its bytes and reads back whole.
    const unicode = join(dir, 'unicode.img');
    customiseImage({ image, out: unicode, deb, config: spaced, wifi: { ssid: 'Café Ωmega 5G', password: 'correct horse', country: 'FR' }, agent });
    const uni = debugfs(unicode, 'cat /etc/NetworkManager/system-connections/edge-agent-wifi-Caf___mega_5G.nmconnection');
    expect(Buffer.from(/^ssid=([\d;]+)$/m.exec(uni)![1].split(';').filter(Boolean).map(Number)).toString()).toBe('Café Ωmega 5G');
  });

  it('refuses a config the agent would refuse, naming the key, and writes nothing', () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'broker: { mqtt: { port: "eighty" } }\n');
    const out = join(dir, 'never.img');
    expect(() => customiseImage({ image, out, deb, config: bad, agent })).toThrow(/--config .*bad\.yaml: .*broker\.mqtt\.port: must be integer/s);
    expect(existsSync(out)).toBe(false);
    expect(() => customiseImage({ image, out, deb, config: join(dir, 'my-config.yaml'), hostname: 'no_underscores', agent })).toThrow(/--hostname/);
  });
});

describe('edge-agent.yaml on the boot partition', () => {
  const script = resolve(import.meta.dirname, '../../image/files/apply-boot-config.sh');
  let dir: string;
  beforeAll(() => {
    dir = tempDir();
    writeFileSync(join(dir, 'edge-agent'), `#!/bin/sh\nexec ${process.execPath} ${CLI} "$@"\n`);
    chmodSync(join(dir, 'edge-agent'), 0o755);
  });
  afterAll(() => cleanup(dir));
  const apply = () => run('sh', [script], { env: { ...process.env, BOOT_DIR: join(dir, 'boot'), CONFIG_FILE: join(dir, 'config.yaml'), AGENT_BIN: join(dir, 'edge-agent') } });

  it('becomes the config when valid; when not, the old config stays and the reason is logged', async () => {
    mkdirSync(join(dir, 'boot'), { recursive: true });
    writeFileSync(join(dir, 'config.yaml'), 'agent: { id: old }\n');
    writeFileSync(join(dir, 'boot/edge-agent.yaml'), 'agent: { id: bad }\nweb: { http: { port: -1 } }\n');
    const refused = await apply();
    expect(refused.stderr).toMatch(/not valid; the config stays as it was: .*web\.http\.port/s);
    expect(readFileSync(join(dir, 'config.yaml'), 'utf8')).toBe('agent: { id: old }\n');
    expect(existsSync(join(dir, 'boot/edge-agent.yaml.invalid'))).toBe(true);

    writeFileSync(join(dir, 'boot/edge-agent.yaml'), 'agent: { id: new }\n');
    const taken = await apply();
    expect(taken.stdout).toContain('is the config now');
    expect(readFileSync(join(dir, 'config.yaml'), 'utf8')).toBe('agent: { id: new }\n');
    expect(existsSync(join(dir, 'boot/edge-agent.yaml'))).toBe(false);
    expect(existsSync(join(dir, 'boot/edge-agent.yaml.applied'))).toBe(true);
  });
});
