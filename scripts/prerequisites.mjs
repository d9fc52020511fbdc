// `npm test` (pretest) and `npm run bench`: the programs the suite (or the benchmarks) talk to,
// checked before anything is built. On Debian as root, what is missing is installed and PostgreSQL 15
// started; elsewhere the one command to run is printed and they stop. Plain JavaScript: it runs
// before anything is compiled.
//   --bench    also what the benchmarks' baselines need
//   --dry-run  say what would be installed, install nothing
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** What the tests need: a program (or file) and the Debian package that has it. */
export const NEEDED = [
  ['mosquitto', 'mosquitto', 'the broker the MQTT sink and the pipeline baseline use'],
  ['mosquitto_pub', 'mosquitto-clients', 'real MQTT clients'],
  ['openssl', 'openssl', 'throwaway CAs for TLS'],
  ['sqlite3', 'sqlite3', "the store as Pi OS's own sqlite3 reads it"],
  ['python3', 'python3', 'the Pi-style pipeline'],
  ['strings', 'binutils', 'encryption at rest: no plaintext in the files'],
  ['ip', 'iproute2', 'network namespaces: clients from other addresses'],
  ['influxd', 'influxdb', 'the InfluxDB sink'],
  ['victoria-metrics', 'victoria-metrics', 'the InfluxDB sink against VictoriaMetrics'],
  ['systemd-analyze', 'systemd', 'the unit (verify, security)'],
  ['debootstrap', 'debootstrap', 'a Debian chroot for the .deb'],
  ['sfdisk', 'fdisk', 'the SD-card image'],
  ['mcopy', 'mtools', "the image's boot partition"],
  ['mkfs.vfat', 'dosfstools', "the image's boot partition"],
  ['debugfs', 'e2fsprogs', "the image's root partition and the loop-device disks"],
  ['losetup', 'mount', 'loop-device disks (wear, disk full)'],
  ['runuser', 'util-linux', "PostgreSQL's own user"],
  ['xz', 'xz-utils', 'compressed images'],
  ['man', 'man-db', "the unit's Documentation= page"],
  ['g++', 'g++', 'native addons (node-gyp)'],
  ['make', 'make', 'native addons (node-gyp)'],
  ['lintian', 'lintian', "Debian's verdict on the .deb"],
  ['promtool', 'prometheus', "Prometheus' verdict on /metrics"],
  ['chromium', 'chromium', 'the status page in a real browser'],
  ['/usr/share/fonts/truetype/liberation', 'fonts-liberation', 'text in the browser'],
  ['pg_ctlcluster', 'postgresql-common', 'the PostgreSQL sink'],
  ['/usr/lib/postgresql/15/bin/initdb', 'postgresql-15', 'the PostgreSQL sink (a private TLS server)'],
];

/** What only the benchmarks need. */
export const BENCH_NEEDED = [['/usr/lib/python3/dist-packages/paho', 'python3-paho-mqtt', "the Pi-style pipeline's subscriber"]];

const onPath = (program) => (process.env.PATH ?? '/usr/bin:/bin').split(delimiter).some((dir) => existsSync(join(dir, program)));
const present = (what) => (what.startsWith('/') ? existsSync(what) : onPath(what));

/** The Debian packages for what is not here. */
export function missing(needed = NEEDED) {
  return [...new Set(needed.filter(([what]) => !present(what)).map(([, pkg]) => pkg))];
}

const isDebian = () => existsSync('/etc/debian_version');
const isRoot = () => process.getuid?.() === 0;
const installCommand = (packages) => `apt-get install -y --no-install-recommends ${packages.join(' ')}`;

function sh(program, args) {
  execFileSync(program, args, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

function startPostgres() {
  try {
    execFileSync('pg_ctlcluster', ['15', 'main', 'status'], { stdio: 'ignore' });
  } catch {
    execFileSync('pg_ctlcluster', ['15', 'main', 'start'], { stdio: 'inherit' });
  }
}

/** What to do on this machine: nothing, install (Debian as root), or stop with the command to run. */
export function plan(packages, debian = isDebian(), root = isRoot()) {
  if (packages.length === 0) return { action: 'none' };
  if (debian && root) return { action: 'install', command: installCommand(packages) };
  if (debian) return { action: 'stop', command: `sudo apt-get update && sudo ${installCommand(packages)}` };
  return { action: 'stop', command: undefined };
}

function main() {
  const dryRun = process.argv.includes('--dry-run');
  const bench = process.argv.includes('--bench');
  const needed = bench ? [...NEEDED, ...BENCH_NEEDED] : NEEDED;
  const command = bench ? 'npm run bench' : 'npm test';
  const packages = missing(needed);
  const next = plan(packages);
  if (next.action === 'stop') {
    const lines = needed.filter(([, pkg]) => packages.includes(pkg)).map(([what, pkg, why]) => `  ${pkg.padEnd(18)} ${what}: ${why}`);
    console.error(`${command}: ${bench ? 'the benchmarks' : 'the tests'} need programs this machine lacks:\n${lines.join('\n')}`);
    console.error(
      next.command
        ? `Install them with:\n  ${next.command}\nthen run ${command} again (as root: the tests also use loop devices and network namespaces).`
        : `This is not Debian: install the equivalents of these Debian packages, then run ${command} again.`,
    );
    process.exit(1);
  }
  if (next.action === 'install') {
    console.log(`${command}: installing what ${bench ? 'the benchmarks' : 'the tests'} need: ${packages.join(' ')}`);
    if (dryRun) {
      console.log(`(dry run) would run: apt-get update && ${next.command}`);
      return;
    }
    sh('apt-get', ['update', '-qq']);
    sh('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages]);
  }
  if (!dryRun && isRoot() && present('pg_ctlcluster')) startPostgres();
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
