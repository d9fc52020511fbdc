// The SD-card image customiser: from a stock Raspberry Pi OS Lite image, a new image that installs
// the agent's .deb on first boot with the user's config (checked first), and optionally a hostname,
// Wi-Fi, an SSH key and the first admin's password. No loop mounts (they need privileges and a
// kernel that lends them): sfdisk for the partition table, mtools for the FAT boot partition,
// e2fsprogs' debugfs for the ext4 root, resize2fs to grow it.
//   npm run image -- --image raspios.img --out pi.img --deb dist/edge-agent_0.1.0_arm64.deb --config my.yaml
//     [--hostname pi-1] [--wifi-ssid S --wifi-password-file F --wifi-country GB] [--ssh-key ~/.ssh/id_ed25519.pub]
//     [--admin-password-file F] [--user NAME --user-password-file F] [--boot-config-key signing-public.pem]
import { execFileSync } from 'node:child_process';
import { createPublicKey, randomUUID } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../scripts/project-root.js';
import { nmConnection, wifiProblem } from './wifi.js';
import { isOnPath } from '../scripts/on-path.js';

export interface ImageOptions {
  image: string;
  out: string;
  deb: string;
  config: string;
  hostname?: string;
  wifi?: { ssid: string; password: string; country: string };
  sshKey?: string;
  adminPassword?: string;
  /** A login user made at first boot (Raspberry Pi OS bookworm has none until one is set): userconf.txt. */
  user?: { name: string; password: string };
  /** A PEM public key: the agent then takes only boot-partition configs signed with its private key. */
  bootConfigKey?: string;
  /** The agent's CLI, to check the config as the agent will ([node, dist/bundle/edge-agent.cjs] by default). */
  agent?: string[];
}

interface Partition {
  start: number;
  size: number;
  type: string;
}

const SECTOR = 512;
const ROOT = projectRoot(import.meta.dirname);
const FILES = join(ROOT, 'image/files');
/** Room the first boot needs beyond the .deb: it unpacks the binary (about 140 MB) beside it. */
const INSTALL_ROOM = 256 * 1024 * 1024;

const sh = (cmd: string, args: string[], input?: string) =>
  execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });

function partitions(image: string): Partition[] {
  const table = JSON.parse(sh('sfdisk', ['--json', image])) as { partitiontable: { partitions: Partition[] } };
  return table.partitiontable.partitions;
}

/** Free bytes of the ext4 file system at `offset`. */
function freeBytes(fs: string): number {
  const stats = sh('debugfs', ['-R', 'stats', fs]);
  const num = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(stats)![1]);
  return num('Free blocks') * num('Block size');
}

/** Grow the image and its last (root) partition, then the file system, by `bytes`. */
function growRoot(image: string, bytes: number): void {
  const grown = Math.ceil((statSync(image).size + bytes) / (4 * 1024 * 1024)) * 4 * 1024 * 1024;
  execFileSync('truncate', ['-s', String(grown), image]);
  sh('sfdisk', ['--no-reread', '--no-tell-kernel', '-N', '2', image], ', +\n');
  const fs = `${image}?offset=${partitions(image)[1].start * SECTOR}`;
  execFileSync('e2fsck', ['-fy', fs], { stdio: 'ignore' });
  execFileSync('resize2fs', [fs], { stdio: 'ignore' });
}

/** debugfs commands that put a file in place with its owner and mode (debugfs writes as it is told). */
function put(commands: string[], from: string, to: string, mode: number, uid = 0, gid = 0): void {
  commands.push(
    `rm ${to}`,
    `write ${from} ${to}`,
    `sif ${to} mode 0${(0o100000 | mode).toString(8)}`,
    `sif ${to} uid ${uid}`,
    `sif ${to} gid ${gid}`,
  );
}

function mkdir(commands: string[], dir: string, mode: number): void {
  commands.push(`mkdir ${dir}`, `sif ${dir} mode 0${(0o040000 | mode).toString(8)}`);
}

/** debugfs reads its commands split on spaces: only paths made of these go into them. */
const SAFE_PATH = /^[A-Za-z0-9/._-]+$/;

/** The tools the customiser runs, and the Debian package each comes from. */
const TOOLS: [string, string][] = [
  ['sfdisk', 'fdisk'],
  ['debugfs', 'e2fsprogs'],
  ['e2fsck', 'e2fsprogs'],
  ['resize2fs', 'e2fsprogs'],
  ['mcopy', 'mtools'],
  ['mtype', 'mtools'],
  ['openssl', 'openssl'],
];

/** What this machine lacks to make an image, with the packages to install; undefined when nothing. */
export function missingImageTools(onPath: (tool: string) => boolean = isOnPath): string | undefined {
  const missing = TOOLS.filter(([tool]) => !onPath(tool));
  if (!missing.length) return undefined;
  const packages = [...new Set(missing.map(([, pkg]) => pkg))];
  return `missing ${missing.map(([t]) => t).join(', ')}: on Debian or Ubuntu, sudo apt install ${packages.join(' ')}`;
}

/** Raspberry Pi OS comes as .img.xz: the customiser takes the .img inside. */
function compressedImage(path: string): boolean {
  const head = Buffer.alloc(6);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, head, 0, 6, 0);
  } finally {
    closeSync(fd);
  }
  return head.equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]));
}

export function customiseImage(o: ImageOptions): void {
  const lacking = missingImageTools();
  if (lacking) throw new Error(lacking);
  if (!existsSync(o.image)) throw new Error(`--image: ${o.image} does not exist`);
  if (compressedImage(o.image))
    throw new Error(
      `--image: ${o.image} is xz-compressed, as Raspberry Pi OS downloads come: decompress it first (xz -dk ${o.image}) and give the .img`,
    );
  if (o.user && !/^[a-z_][a-z0-9_-]{0,31}$/.test(o.user.name))
    throw new Error(
      `--user: ${JSON.stringify(o.user.name.slice(0, 40))} is not a Linux user name (lower case letters, digits, _ and -, starting with a letter)`,
    );
  // The config first: a bad one stops here, naming the key, before anything is written.
  const [agent, ...agentArgs] = o.agent ?? [process.execPath, join(ROOT, 'dist/bundle/edge-agent.cjs')];
  try {
    sh(agent, [...agentArgs, 'config', 'check', '--config', o.config]);
  } catch (err) {
    throw new Error(`--config ${o.config}: ${((err as { stderr?: string }).stderr ?? (err as Error).message).trim()}`);
  }
  if (o.hostname !== undefined && !/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i.test(o.hostname))
    throw new Error(
      `--hostname: ${JSON.stringify(o.hostname.slice(0, 70))} is not a host name (RFC 1123: letters, digits, inner hyphens, at most 63)`,
    );
  const wifiWrong = o.wifi && wifiProblem(o.wifi);
  if (wifiWrong) throw new Error(wifiWrong);
  if (o.bootConfigKey !== undefined) {
    try {
      createPublicKey(readFileSync(o.bootConfigKey));
    } catch {
      throw new Error(`--boot-config-key: ${o.bootConfigKey} holds no PEM public key`);
    }
  }
  const parts = partitions(o.image);
  if (parts.length < 2 || !/^(c|b|e)$/i.test(parts[0].type) || parts[1].type !== '83')
    throw new Error(
      `--image: not Raspberry Pi OS's layout (a FAT boot partition, then an ext4 root): ${parts.map((p) => p.type).join(', ')}`,
    );

  const work = mkdtempSync(join(tmpdir(), 'edge-agent-image-'));
  try {
    // The image will hold the Wi-Fi and admin passwords: it is made private before a byte is written.
    writeFileSync(o.out, '', { mode: 0o600 });
    chmodSync(o.out, 0o600);
    execFileSync('cp', ['--sparse=always', '--no-preserve=mode', o.image, o.out]);
    if (!SAFE_PATH.test(work))
      throw new Error(`the temporary folder ${JSON.stringify(work)} has characters debugfs cannot take: set TMPDIR to a plain path`);
    /** Every file goes into the image from the work folder, by a name of ours: no user path reaches debugfs. */
    const staged = (from: string, name: string) => {
      const path = join(work, name);
      copyFileSync(from, path);
      return path;
    };
    const need = statSync(o.deb).size + INSTALL_ROOM;
    const root = () => `${o.out}?offset=${partitions(o.out)[1].start * SECTOR}`;
    const free = freeBytes(root());
    if (free < need) growRoot(o.out, need - free);

    const commands: string[] = [];
    const dir = '/var/lib/edge-agent-firstboot';
    mkdir(commands, dir, 0o700);
    put(commands, staged(o.deb, 'edge-agent.deb'), `${dir}/edge-agent.deb`, 0o600);
    put(commands, staged(o.config, 'config.yaml'), `${dir}/config.yaml`, 0o600);
    put(commands, join(FILES, 'edge-agent-firstboot.sh'), `${dir}/firstboot.sh`, 0o700);
    put(commands, join(FILES, 'edge-agent-firstboot.service'), '/etc/systemd/system/edge-agent-firstboot.service', 0o644);
    commands.push(
      'mkdir /etc/systemd/system/multi-user.target.wants',
      'symlink /etc/systemd/system/multi-user.target.wants/edge-agent-firstboot.service /etc/systemd/system/edge-agent-firstboot.service',
    );
    const local = (name: string, text: string) => {
      const path = join(work, name);
      writeFileSync(path, text, { mode: 0o600 });
      return path;
    };
    if (o.adminPassword !== undefined) put(commands, local('admin-password', `${o.adminPassword}\n`), `${dir}/admin-password`, 0o600);
    if (o.bootConfigKey !== undefined) put(commands, staged(o.bootConfigKey, 'boot-config.pub'), `${dir}/boot-config.pub`, 0o600);
    if (o.sshKey !== undefined) put(commands, local('authorized_keys', `${o.sshKey.trim()}\n`), `${dir}/authorized_keys`, 0o600);
    if (o.hostname !== undefined) {
      const hosts = sh('debugfs', ['-R', 'cat /etc/hosts', root()])
        .replace(/^127\.0\.1\.1\s.*$/m, '')
        .trimEnd();
      put(commands, local('hostname', `${o.hostname}\n`), '/etc/hostname', 0o644);
      put(commands, local('hosts', `${hosts}\n127.0.1.1\t${o.hostname}\n`), '/etc/hosts', 0o644);
    }
    if (o.wifi)
      put(
        commands,
        local('wifi.nmconnection', nmConnection(o.wifi, randomUUID())),
        `/etc/NetworkManager/system-connections/edge-agent-wifi-${o.wifi.ssid.replace(/[^A-Za-z0-9._-]/g, '_')}.nmconnection`,
        0o600,
      );
    const script = local('debugfs.cmd', `${commands.join('\n')}\n`);
    // debugfs says "File not found" for rm of a file that is not there and "already exists" for mkdir; both are fine.
    execFileSync('debugfs', ['-w', '-f', script, root()], { stdio: 'ignore' });

    // The boot partition (FAT): SSH on (Raspberry Pi OS turns sshd on when a file `ssh` is there), the Wi-Fi country.
    const boot = `${o.out}@@${partitions(o.out)[0].start * SECTOR}`;
    if (o.sshKey !== undefined) execFileSync('mcopy', ['-o', '-i', boot, local('ssh', ''), '::ssh']);
    if (o.user) {
      // Raspberry Pi OS makes this user at its first boot, then deletes the file (what Raspberry Pi Imager writes too).
      const hash = sh('openssl', ['passwd', '-6', '-stdin'], `${o.user.password}\n`).trim();
      execFileSync('mcopy', ['-o', '-i', boot, local('userconf.txt', `${o.user.name}:${hash}\n`), '::userconf.txt']);
    }
    if (o.wifi) {
      const cmdline = sh('mtype', ['-i', boot, '::cmdline.txt'])
        .trim()
        .replace(/\s*cfg80211\.ieee80211_regdom=\S+/, '');
      execFileSync('mcopy', [
        '-o',
        '-i',
        boot,
        local('cmdline.txt', `${cmdline} cfg80211.ieee80211_regdom=${o.wifi.country}\n`),
        '::cmdline.txt',
      ]);
    }
  } catch (err) {
    rmSync(o.out, { force: true });
    throw err;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function parseArgs(argv: string[]): ImageOptions {
  const value = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const required = (name: string) => value(name) ?? failUsage(`--${name} is required`);
  const file = (name: string) => (value(name) === undefined ? undefined : readFileSync(value(name)!, 'utf8').split('\n')[0]);
  const ssid = value('wifi-ssid');
  return {
    image: required('image'),
    out: required('out'),
    deb: required('deb'),
    config: required('config'),
    hostname: value('hostname'),
    wifi:
      ssid === undefined
        ? undefined
        : {
            ssid,
            password: file('wifi-password-file') ?? failUsage('--wifi-password-file is required with --wifi-ssid'),
            country: value('wifi-country') ?? failUsage('--wifi-country is required with --wifi-ssid'),
          },
    sshKey: value('ssh-key') === undefined ? undefined : readFileSync(value('ssh-key')!, 'utf8'),
    adminPassword: file('admin-password-file'),
    bootConfigKey: value('boot-config-key'),
    user:
      value('user') === undefined
        ? undefined
        : { name: value('user')!, password: file('user-password-file') ?? failUsage('--user-password-file is required with --user') },
  };
}

function failUsage(message: string): never {
  console.error(`edge-agent image: ${message}`);
  process.exit(2);
}

if (import.meta.filename === process.argv[1]) {
  try {
    const options = parseArgs(process.argv.slice(2));
    customiseImage(options);
    console.log(`${options.out}: ready to write to an SD card`);
  } catch (err) {
    console.error(`edge-agent image: ${(err as Error).message}`);
    process.exit(1);
  }
}
