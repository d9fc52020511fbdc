// `npm run build:deb -- --arch amd64|arm64`: dist/edge-agent_<version>_<arch>.deb with dpkg-deb: the
// single executable, the config as a conffile, the hardened unit, and maintainer scripts that make
// the system user and enable the service the way dh_installsystemd does.
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, type Dirent } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { VERSION } from '../../agent/lib/version.js';
import { projectRoot } from '../project-root.js';
import { buildBinary, type Arch } from './build.js';
import { helpOf, manPage } from './man-page.js';

export type DebArch = 'amd64' | 'arm64';

const ROOT = projectRoot();

/**
 * Who makes the package and where it lives: set at build (Debian's DEBFULLNAME and DEBEMAIL,
 * EDGE_AGENT_HOMEPAGE) for a package to publish; the defaults say so.
 */
export function packager(env: NodeJS.ProcessEnv = process.env): { maintainer: string; homepage: string } {
  const name = env.DEBFULLNAME ?? 'edge-agent developers';
  const email = env.DEBEMAIL ?? 'edge-agent@example.org';
  return { maintainer: `${name} <${email}>`, homepage: env.EDGE_AGENT_HOMEPAGE ?? 'https://example.org/edge-agent' };
}

const CONTROL = (version: string, arch: DebArch, installedKb: number) => `Package: edge-agent
Version: ${version}
Architecture: ${arch}
Maintainer: ${packager().maintainer}
Installed-Size: ${installedKb}
Depends: libc6 (>= 2.28), passwd
Recommends: systemd
Section: net
Priority: optional
Homepage: ${packager().homepage}
Description: edge telemetry agent for the Raspberry Pi
 An embedded MQTT broker that validates every reading, keeps it in a durable
 log on the SD card, stores it locally for queries and forwards it, exactly
 once in effect, to PostgreSQL/TimescaleDB, InfluxDB and upstream MQTT.
`;

const COPYRIGHT = `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: edge-agent
Comment: The binary embeds Node.js (MIT) and the npm packages listed in package-lock.json under their own licenses.

Files: *
Copyright: 2026 edge-agent developers
License: Apache-2.0
 On Debian systems, the full text of the Apache License, Version 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
`;

const CHANGELOG = (version: string) => `edge-agent (${version}) stable; urgency=medium

  * Release ${version}; see /usr/share/doc/edge-agent/README.md.

 -- ${packager().maintainer}  ${new Date().toUTCString().replace('GMT', '+0000')}
`;

/** What lintian says of a Node single executable that cannot be otherwise, each with why. */
const LINTIAN_OVERRIDES = `# A Node.js single executable: Node and the agent's bundle are appended to the node binary, which
# strip would cut off; it is built by Node's release process, not rebuilt here.
edge-agent: unstripped-binary-or-object [usr/bin/edge-agent]
edge-agent: hardening-no-pie [usr/bin/edge-agent]
# zlib is part of Node itself, statically linked by its release build.
edge-agent: embedded-library zlib [usr/bin/edge-agent]
# Node's release build does not use _FORTIFY_SOURCE; the binary is Node's, not rebuilt here.
edge-agent: hardening-no-fortify-functions [usr/bin/edge-agent]
# Words in the comments and messages of Node's own code and of the bundled npm packages.
edge-agent: spelling-error-in-binary * [usr/bin/edge-agent]
# The config may hold sink passwords: readable by root and the agent's group only.
edge-agent: non-standard-file-perm 0640 != 0644 [etc/edge-agent/config.yaml]
# systemd only: the agent's sandbox (ProtectSystem, SystemCallFilter, MemoryMax) lives in its unit,
# which a sysvinit script could not give it.
edge-agent: package-supports-alternative-init-but-no-init.d-script [lib/systemd/system/*]
`;

/** DEBIAN/md5sums: every installed file's digest, as dh_md5sums writes it (dpkg --verify reads it). */
function md5sums(root: string): string {
  const files = (readdirSync(root, { recursive: true, withFileTypes: true }) as Dirent[])
    .filter((e) => e.isFile())
    .map((e) => relative(root, join(e.parentPath, e.name)))
    .filter((path) => !path.startsWith('DEBIAN/'))
    .sort();
  return files
    .map(
      (path) =>
        `${createHash('md5')
          .update(readFileSync(join(root, path)))
          .digest('hex')}  ${path}\n`,
    )
    .join('');
}

export interface DebOptions {
  /** package.json's by default (a test makes a later one to upgrade to). */
  version?: string;
  /**
   * What ships is xz at dpkg-deb's level (6): 31.7 MB, a minute of CPU here. A test that installs and
   * lints a package takes the same format at level 1 (36.8 MB, 9 s); one it only upgrades to, gzip -1
   * (50.8 MB, 1.4 s).
   */
  compression?: 'xz' | 'fast-xz' | 'fast-gzip';
}

/** Build the .deb. */
export async function buildDeb(arch: DebArch, { version = VERSION, compression = 'xz' }: DebOptions = {}): Promise<string> {
  const binArch: Arch = arch === 'amd64' ? 'x64' : 'arm64';
  const binary = join(ROOT, 'dist', `edge-agent-linux-${binArch}`);
  if (!existsSync(binary)) await buildBinary(binArch);
  const root = join(ROOT, '.cache/deb', arch);
  rmSync(root, { recursive: true, force: true });
  const put = (from: string, to: string, mode: number) => {
    const path = join(root, to);
    mkdirSync(dirname(path), { recursive: true });
    copyFileSync(from, path);
    chmodSync(path, mode);
  };
  put(binary, 'usr/bin/edge-agent', 0o755);
  put(join(ROOT, 'scripts/deb/config.yaml'), 'etc/edge-agent/config.yaml', 0o640);
  put(join(ROOT, 'systemd/edge-agent.service'), 'lib/systemd/system/edge-agent.service', 0o644);
  // Headless reconfiguration: edge-agent.yaml on the boot partition, checked and taken before the agent starts.
  put(join(ROOT, 'image/files/edge-agent-bootconfig.service'), 'lib/systemd/system/edge-agent-bootconfig.service', 0o644);
  put(join(ROOT, 'image/files/apply-boot-config.sh'), 'usr/lib/edge-agent/apply-boot-config', 0o755);
  put(join(ROOT, 'image/files/edge-agent-bootconfig-verify.service'), 'lib/systemd/system/edge-agent-bootconfig-verify.service', 0o644);
  put(join(ROOT, 'image/files/verify-boot-config.sh'), 'usr/lib/edge-agent/verify-boot-config', 0o755);
  put(join(ROOT, 'README.md'), 'usr/share/doc/edge-agent/README.md', 0o644);
  for (const script of ['postinst', 'prerm', 'postrm']) put(join(ROOT, 'scripts/deb', script), `DEBIAN/${script}`, 0o755);
  writeFileSync(join(root, 'usr/share/doc/edge-agent/copyright'), COPYRIGHT);
  const gzipped = (path: string, text: string) => {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), gzipSync(text, { level: 9 }));
    chmodSync(join(root, path), 0o644);
  };
  gzipped('usr/share/man/man1/edge-agent.1.gz', manPage(version, helpOf(binary)));
  // A native package (no Debian revision): its one changelog is changelog.gz.
  gzipped('usr/share/doc/edge-agent/changelog.gz', CHANGELOG(version));
  mkdirSync(join(root, 'usr/share/lintian/overrides'), { recursive: true });
  writeFileSync(join(root, 'usr/share/lintian/overrides/edge-agent'), LINTIAN_OVERRIDES);
  writeFileSync(join(root, 'DEBIAN/conffiles'), '/etc/edge-agent/config.yaml\n');
  writeFileSync(join(root, 'DEBIAN/md5sums'), md5sums(root));
  const installedKb = Number(execFileSync('du', ['-sk', '--exclude=DEBIAN', root], { encoding: 'utf8' }).split('\t')[0]);
  writeFileSync(join(root, 'DEBIAN/control'), CONTROL(version, arch, installedKb));
  const out = join(ROOT, 'dist', `edge-agent_${version}_${arch}.deb`);
  const level = { xz: ['-Zxz'], 'fast-xz': ['-Zxz', '-z1'], 'fast-gzip': ['-Zgzip', '-z1'] }[compression];
  await promisify(execFile)('dpkg-deb', ['--root-owner-group', ...level, '--build', root, out]);
  console.log(`${out}`);
  return out;
}

if (import.meta.filename === process.argv[1]) {
  const i = process.argv.indexOf('--arch');
  const arch = i >= 0 ? process.argv[i + 1] : process.arch === 'x64' ? 'amd64' : process.arch;
  if (arch !== 'amd64' && arch !== 'arm64') {
    console.error(`--arch: amd64 or arm64, not ${arch}`);
    process.exit(2);
  }
  buildDeb(arch).catch((err: Error) => {
    console.error(err.message);
    process.exit(1);
  });
}
