// A machine with nothing installed: a fresh copy of the minimal Debian scripts/debian-chroot.mjs
// makes once (debootstrap from the machine's mirror), unpacked into a temporary folder for each test.
import { execFile } from 'node:child_process';
import { chmodSync } from 'node:fs';
import { promisify } from 'node:util';
import { debianTarball } from '../../scripts/debian-chroot.mjs';
import { tempDir } from './agent.js';

const run = promisify(execFile);

/** A fresh copy of the minimal Debian in a temporary folder (remove it with cleanup). */
export async function debianChroot(): Promise<string> {
  const tarball = await debianTarball();
  const chroot = tempDir('edge-agent-chroot-');
  await run('tar', ['xf', tarball, '-C', chroot]);
  chmodSync(chroot, 0o755); // its / (a temporary folder is 0700): other users must get in
  return chroot;
}
