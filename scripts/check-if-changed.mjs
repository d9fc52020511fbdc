// `npm run check` (which `npm test` starts with): the build, the type check, the lint and the format
// check, skipped when no file they read changed since they all last passed here. The project's
// files (git's tracked and untracked ones, ignored ones left out) and the installed packages' lock
// are hashed by content: CI runs the check beside the native addons' compile, then `npm test` would
// run it again on the same files (9 s). Without git, or with --force, it always runs.
// Plain JavaScript: it runs before anything is compiled.
import { execFileSync, execSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

const root = process.env.EDGE_AGENT_BUILD_ROOT ?? join(import.meta.dirname, '..'); // a test points it elsewhere
const STAMP = join(root, 'node_modules/.cache/edge-agent-check');
const STEPS = ['build:if-changed', 'typecheck', 'lint', 'format:check'];

/** A hash of every file the checks read, or undefined where git cannot list them. */
function fingerprint() {
  let files;
  try {
    files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  } catch {
    return undefined;
  }
  const hash = createHash('sha256');
  for (const file of [...files.split('\0').filter(Boolean).sort(), 'node_modules/.package-lock.json']) {
    const path = join(root, file);
    hash.update(`${file}\0`);
    if (existsSync(path)) hash.update(readFileSync(path));
  }
  return hash.digest('hex');
}

const before = fingerprint();
if (!process.argv.includes('--force') && before && existsSync(STAMP) && readFileSync(STAMP, 'utf8') === before) {
  console.error('edge-agent: the checks passed on these very files before; not run again (npm run check -- --force runs them)');
} else {
  for (const step of STEPS) {
    try {
      execSync(`npm run ${step} --silent`, { cwd: root, stdio: 'inherit' });
    } catch (err) {
      process.exit(err.status ?? 1); // the step said why
    }
  }
  // Stamped only if nothing changed while the checks ran (an edit then was not checked).
  if (before && fingerprint() === before) {
    mkdirSync(dirname(STAMP), { recursive: true });
    writeFileSync(STAMP, before);
  }
}
