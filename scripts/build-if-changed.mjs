// `npm start` (prestart): build only when a source changed since the last build, not on every
// start (the build takes about 3 s here, far longer on a Pi; the agent itself about 1 s).
// Plain JavaScript: it runs before anything is compiled.
import { execSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = process.env.EDGE_AGENT_BUILD_ROOT ?? join(import.meta.dirname, '..'); // a test points it elsewhere
const STAMP = join(root, 'dist', '.built');
const SOURCES = [
  'agent',
  'embedded-broker',
  'mqtt-topic',
  'scripts',
  'image',
  'package.json',
  'package-lock.json',
  'tsconfig.json',
  'tsconfig.build.json',
];

/** The newest modification time under `path` (a folder's own: a file removed; .test.ts files do not go into dist). */
function newest(path) {
  const s = statSync(path, { throwIfNoEntry: false });
  if (!s) return 0;
  if (!s.isDirectory()) return path.endsWith('.test.ts') ? 0 : s.mtimeMs;
  return Math.max(s.mtimeMs, ...readdirSync(path).map((name) => newest(join(path, name))));
}

if (process.argv.includes('--built')) {
  // The end of `npm run build`: what it built is current as of now.
  writeFileSync(STAMP, `${new Date().toISOString()}\n`);
} else {
  const built = existsSync(STAMP) ? statSync(STAMP).mtimeMs : 0;
  if (built === 0 || Math.max(...SOURCES.map((s) => newest(join(root, s)))) > built) {
    const started = Date.now();
    execSync('npm run build --silent', { cwd: root, stdio: 'inherit' });
    console.error(`edge-agent: built in ${((Date.now() - started) / 1000).toFixed(1)} s (sources changed since the last build)`);
  }
}
