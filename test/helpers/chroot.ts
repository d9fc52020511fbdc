// A minimal Debian bookworm (debootstrap --variant=minbase from the machine's mirror), made once and
// kept in .cache/deb, unpacked afresh for each test that needs a machine with nothing installed.
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../../scripts/project-root.js';
import { cleanup, tempDir } from './agent.js';

const run = promisify(execFile);

/** A fresh copy of the minimal Debian in a temporary folder (remove it with cleanup). */
export async function debianChroot(): Promise<string> {
  const chroot = tempDir('edge-agent-chroot-');
  const cached = join(projectRoot(), '.cache/deb/chroot-bookworm-amd64.tar');
  if (!existsSync(cached)) {
    const mirror =
      /^URIs:\s*(\S+)/m.exec(readFileSync('/etc/apt/sources.list.d/debian.sources', 'utf8'))?.[1] ?? 'http://deb.debian.org/debian';
    const fresh = tempDir('edge-agent-debootstrap-');
    await run('debootstrap', ['--variant=minbase', 'bookworm', fresh, mirror], { maxBuffer: 64 * 1024 * 1024 });
    mkdirSync(join(projectRoot(), '.cache/deb'), { recursive: true });
    await run('tar', ['cf', `${cached}.tmp`, '-C', fresh, '.']);
    await run('mv', [`${cached}.tmp`, cached]);
    cleanup(fresh);
  }
  await run('tar', ['xf', cached, '-C', chroot]);
  chmodSync(chroot, 0o755); // its / (a temporary folder is 0700): other users must get in
  return chroot;
}
