// What a benchmark report says about where it ran: the machine and the versions of everything measured.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, release, totalmem } from 'node:os';
import { VERSION } from '../../agent/lib/version.js';
import { EMBEDDED_NODE } from '../binary/build.js';
import { projectRoot } from '../project-root.js';

const quiet = (program: string, args: string[]): string | undefined => {
  try {
    return execFileSync(program, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], cwd: projectRoot() }).trim();
  } catch {
    return undefined;
  }
};

const packageVersion = (pkg: string) => quiet('dpkg-query', ['-W', '-f=${Version}', pkg]) ?? 'not installed';

export function machine(): string[] {
  const cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU';
  const os = /^PRETTY_NAME="?([^"\n]+)/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? 'unknown OS';
  const disk = quiet('findmnt', ['-no', 'FSTYPE,SOURCE', '-T', '/tmp']) ?? 'unknown';
  return [
    `${cpu}, ${availableParallelism()} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB memory (a shared virtual machine)`,
    `${os}, Linux ${release()}`,
    `temporary files (where the agents' data go): ${disk}`,
  ];
}

export function versions(): string[] {
  const commit = quiet('git', ['rev-parse', '--short', 'HEAD']);
  const dirty = quiet('git', ['status', '--porcelain', '--untracked-files=no']) ? ' with uncommitted changes' : '';
  return [
    `edge-agent ${VERSION}${commit ? ` (commit ${commit}${dirty})` : ''}, run from sources on Node ${process.versions.node}; the single executable embeds Node ${EMBEDDED_NODE}`,
    `Aedes ${JSON.parse(readFileSync(`${projectRoot()}/node_modules/aedes/package.json`, 'utf8')).version} (the bare-Aedes baseline)`,
    `Mosquitto ${packageVersion('mosquitto')}, python3-paho-mqtt ${packageVersion('python3-paho-mqtt')}, Python ${quiet('python3', ['-c', 'import platform; print(platform.python_version())']) ?? '?'} (the Pi-style pipeline)`,
    `PostgreSQL ${packageVersion('postgresql-15')}, InfluxDB ${packageVersion('influxdb')}, VictoriaMetrics ${packageVersion('victoria-metrics')}`,
    `sqlite3 ${packageVersion('sqlite3')}, Chromium ${packageVersion('chromium')}`,
  ];
}
