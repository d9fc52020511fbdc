// The minimal Debian the tests install the .deb into and run prerequisites.mjs in: bookworm,
// debootstrap --variant=minbase from the machine's own mirror, made once into .cache/deb as a tarball
// (test/helpers/chroot.ts unpacks a fresh copy for each test). Plain JavaScript: .ci/run makes it
// while npm ci's addons compile, before anything is built; the first test that needs it does otherwise.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { missing } from './prerequisites.mjs';

const run = promisify(execFile);
const TARBALL = join(import.meta.dirname, '..', '.cache/deb/chroot-bookworm-amd64.tar');

/** The tarball of the minimal Debian, made if it is not there yet (by whichever process asks first). */
export async function debianTarball() {
  await madeOnce(TARBALL, debootstrap);
  return TARBALL;
}

async function debootstrap() {
  const sources = '/etc/apt/sources.list.d/debian.sources';
  const mirror = (existsSync(sources) && /^URIs:\s*(\S+)/m.exec(readFileSync(sources, 'utf8'))?.[1]) || 'http://deb.debian.org/debian';
  const fresh = mkdtempSync(join(tmpdir(), 'edge-agent-debootstrap-'));
  try {
    await run('debootstrap', ['--variant=minbase', 'bookworm', fresh, mirror], { maxBuffer: 64 * 1024 * 1024 });
    await run('tar', ['cf', `${TARBALL}.tmp`, '-C', fresh, '.']);
    renameSync(`${TARBALL}.tmp`, TARBALL);
  } finally {
    rmSync(fresh, { recursive: true, force: true });
  }
}

/**
 * `path` made by `make` once: test files run in parallel processes, and two debootstraps at once
 * would each take minutes. A lock left by a killed run goes after 20 minutes.
 */
async function madeOnce(path, make) {
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

/** Made ahead of the tests where they would make it (as root, with debootstrap); else left to them. */
async function main() {
  if (process.getuid?.() !== 0 || missing([['debootstrap', 'debootstrap']]).length) {
    console.log('debian-chroot: not made ahead (needs root and debootstrap); the tests that use it make it or are skipped');
    return;
  }
  const started = Date.now();
  const fresh = !existsSync(TARBALL);
  await debianTarball();
  console.log(`debian-chroot: ${TARBALL} ${fresh ? `made in ${((Date.now() - started) / 1000).toFixed(0)} s` : 'already there'}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
