// The end of `npm run build`: V8's code cache for the bundled agent (scripts/bundle-loader.ts), one for
// Node without flags and one for the flags `npm start` and the unit use (V8 refuses a cache made under
// other flags). Each is made by starting the agent on a temporary folder, stopping it once ready, and
// saving what V8 compiled by then.
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { productionNode } from './production-node.js';
import { projectRoot } from './project-root.js';

const STOP_AFTER_MS = 60_000;

/** Start the command under `nodeArgs`, stop it once ready; the loader writes the cache as it exits. */
async function cacheFor(command: string, nodeArgs: string[]): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'edge-agent-code-cache-'));
  try {
    const config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      [
        `agent: { id: code-cache, dataDir: ${JSON.stringify(join(dir, 'data'))} }`,
        'log: { level: warn }',
        'broker: { mqtt: { host: 127.0.0.1, port: 0 } }',
        'web: { http: { host: 127.0.0.1, port: 0 } }',
      ].join('\n'),
    );
    const agent = spawn(process.execPath, [...nodeArgs, command, 'run', '--config', config], {
      env: { ...process.env, WRITE_BUNDLE_CODE_CACHE: '1' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const timer = setTimeout(() => agent.kill('SIGKILL'), STOP_AFTER_MS);
    createInterface({ input: agent.stdout! }).on('line', (line) => line.includes('"msg":"ready"') && agent.kill('SIGTERM'));
    const code = await new Promise<number | null>((resolve) => agent.on('exit', resolve));
    clearTimeout(timer);
    if (code !== 0) throw new Error(`the agent (node ${nodeArgs.join(' ')}) exited with ${code} while making its code cache`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function writeCodeCaches(root = projectRoot()): Promise<string[]> {
  const command = join(root, 'dist/bundle/edge-agent.cjs');
  await Promise.all([cacheFor(command, []), cacheFor(command, productionNode().args)]);
  // Readable as the bundle is (the agent writes its files for itself alone).
  const folder = join(root, 'dist/bundle/code-cache');
  chmodSync(folder, 0o755);
  const caches = readdirSync(folder).map((name) => join(folder, name));
  for (const cache of caches) chmodSync(cache, 0o644);
  return caches;
}

if (import.meta.filename === process.argv[1]) await writeCodeCaches();
