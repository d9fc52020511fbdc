// The end of `npm run build`: V8's code cache for the bundled agent (scripts/bundle-loader.ts), one for
// Node without flags and one for the flags `npm start` and the unit use (V8 refuses a cache made under
// other flags). Each is made by starting the agent on a temporary folder, stopping it once ready, and
// saving what V8 compiled by then. Where the agent cannot start yet (CI builds while the native
// addons compile, then runs this again), the build goes on without a cache: the command runs as
// well without one, only slower to start.
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
        // agent.heap small sets a V8 flag as the agent starts, and a cache made under it is refused
        // by the next start (V8 checks the flags): the functions compiled are the same either way.
        `agent: { id: code-cache, dataDir: ${JSON.stringify(join(dir, 'data'))}, heap: fast }`,
        'log: { level: warn }',
        'broker: { mqtt: { host: 127.0.0.1, port: 0 } }',
        'web: { http: { host: 127.0.0.1, port: 0 } }',
      ].join('\n'),
    );
    const agent = spawn(process.execPath, [...nodeArgs, command, 'run', '--config', config], {
      env: { ...process.env, WRITE_BUNDLE_CODE_CACHE: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let said = ''; // its last line, to say why it did not start
    createInterface({ input: agent.stderr! }).on('line', (line) => (said = line || said));
    const timer = setTimeout(() => agent.kill('SIGKILL'), STOP_AFTER_MS);
    let ready = false;
    createInterface({ input: agent.stdout! }).on('line', (line) => {
      said = line || said;
      if (!line.includes('"msg":"ready"')) return;
      ready = true;
      agent.kill('SIGTERM');
    });
    const code = await new Promise<number | null>((resolve) => agent.on('close', resolve));
    clearTimeout(timer);
    if (!ready || code !== 0) {
      throw new Error(`the agent (${['node', ...nodeArgs].join(' ')}) did not start and stop (exit ${code}): ${said.slice(0, 300)}`);
    }
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

if (import.meta.filename === process.argv[1]) {
  await writeCodeCaches().catch((err: Error) =>
    console.error(`edge-agent: no code cache made, the command will compile the bundle at each start: ${err.message}`),
  );
}
