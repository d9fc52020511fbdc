// Small real filesystems for disk-full and disk-pressure tests: a tmpfs mounted for the test (CI runs as root).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, statfsSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { cleanup, tempDir } from './agent.js';

export const isRoot = process.getuid?.() === 0;
const mounts: string[] = [];

/** A tmpfs of `mb` megabytes, mode 0700; unmounted by unmountDisks(). */
export function smallDisk(mb: number): string {
  const mnt = join(tempDir(), 'data');
  mkdirSync(mnt);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${mb}m,mode=0700`, 'tmpfs', mnt]);
  mounts.push(mnt);
  return mnt;
}

/** For afterEach: every disk smallDisk() mounted goes, with its folder. */
export function unmountDisks(): void {
  for (const m of mounts.splice(0)) {
    execFileSync('umount', ['-l', m]);
    cleanup(join(m, '..'));
  }
}

/** Bytes free for an unprivileged writer on the filesystem of `dir`. */
export function freeBytes(dir: string): number {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}

/** Another file takes space until `leave` bytes are free (or a block more); returns its path. */
export function ballast(dir: string, leave: number): string {
  const path = join(dir, `ballast-${randomBytes(4).toString('hex')}`);
  const fd = openSync(path, 'w');
  const block = Buffer.alloc(64 * 1024, 1);
  try {
    while (freeBytes(dir) - block.length >= leave) writeSync(fd, block);
  } finally {
    closeSync(fd);
  }
  return path;
}
