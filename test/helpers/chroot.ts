// A minimal Debian bookworm (debootstrap --variant=minbase from the machine's mirror), made once and
// kept in .cache/deb, unpacked afresh for each test that needs a machine with nothing installed.
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../../scripts/project-root.js';
import { cleanup, tempDir } from './agent.js';

const run = promisify(execFile);

/** A fresh copy of the minimal Debian in a temporary folder (remove it with cleanup). */
export async function debianChroot(): Promise<string> {
  const cached = join(projectRoot(), '.cache/deb/chroot-bookworm-amd64.tar');
  await madeOnce(cached, () => debootstrap(cached));
  const chroot = tempDir('edge-agent-chroot-');
  await run('tar', ['xf', cached, '-C', chroot]);
  chmodSync(chroot, 0o755); // its / (a temporary folder is 0700): other users must get in
  return chroot;
}

async function debootstrap(cached: string): Promise<void> {
  const mirror =
    /^URIs:\s*(\S+)/m.exec(readFileSync('/etc/apt/sources.list.d/debian.sources', 'utf8'))?.[1] ?? 'http://deb.debian.org/debian';
  const fresh = tempDir('edge-agent-debootstrap-');
  try {
    await run('debootstrap', ['--variant=minbase', 'bookworm', fresh, mirror], { maxBuffer: 64 * 1024 * 1024 });
    await run('tar', ['cf', `${cached}.tmp`, '-C', fresh, '.']);
    renameSync(`${cached}.tmp`, cached);
  } finally {
    cleanup(fresh);
  }
}

/**
 * `path` made by `make` once, whichever test file asks first: test files run in parallel processes,
 * and two debootstraps at once would each take minutes. A lock left by a killed run goes after 20 minutes.
 */
async function madeOnce(path: string, make: () => Promise<void>): Promise<void> {
  const lock = `${path}.lock`;
  mkdirSync(dirname(path), { recursive: true });
  while (!existsSync(path)) {
    try {
      mkdirSync(lock);
    } catch {
      const since = statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now();
      if (Date.now() - since > 20 * 60_000) rmSync(lock, { recursive: true, force: true });
      await new Promise((r) => setTimeout(r, 1000));
      continue;
    }
    try {
      if (!existsSync(path)) await make();
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }
}
