// The source checkout's command (dist/bundle/edge-agent.cjs, what `npm start` runs) passes the smoke
// test, and runs the bundle with the code caches the build made (scripts/code-cache.ts,
// scripts/bundle-loader.ts): one for Node without flags, one for the unit's flags; no cache for other
// flags, nor for a bundle changed since, even by one byte.
import { execFile } from 'node:child_process';
import { cpSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { VERSION } from '../../agent/lib/version.js';
import { smokeTest } from '../../scripts/binary/smoke.js';
import { loadMaps, mapStack } from '../../scripts/map-stack.js';
import { frameAt, lineOf } from '../helpers/stack.js';
import { projectRoot } from '../../scripts/project-root.js';
import { CLI, PRODUCTION_NODE, spawnAgent, tempDir, writeConfig } from '../helpers/agent.js';
import { connect } from '../helpers/mqtt.js';

const run = promisify(execFile);
const ROOT = projectRoot();

/** What the loader says of the cache (NODE_DEBUG=code-cache), and the command's own output. */
async function versionWith(nodeArgs: string[], command = CLI): Promise<{ cache: string; stdout: string }> {
  const { stdout, stderr } = await run(process.execPath, [...nodeArgs, command, '--version'], {
    env: { ...process.env, NODE_DEBUG: 'code-cache', NODE_OPTIONS: '' },
  });
  const cache = /CODE-CACHE \d+: (.*)$/m.exec(stderr)?.[1] ?? `nothing said: ${stderr}`;
  return { cache, stdout: stdout.trim() };
}

describe('the bundled command', () => {
  it('passes the smoke test: MQTT in, the HTTP API, PostgreSQL, the page and Swagger UI with their files', async () => {
    const r = await smokeTest([process.execPath, CLI]);
    expect(r.version).toContain(`Node ${process.version}`);
  }, 180_000);
});

describe("the bundled packages' debug output (agent/lib/quiet-debug.cjs)", () => {
  /** What the agent wrote to stderr once one reading came in over MQTT. */
  async function stderrAfterOneReading(env: NodeJS.ProcessEnv): Promise<string> {
    const agent = await spawnAgent(['--config', writeConfig(tempDir())], env);
    const client = await connect(`mqtt://${agent.listeners.mqtt}`);
    await client.publishAsync('sensors/debug', JSON.stringify({ t: 1 }), { qos: 1 });
    await client.endAsync();
    agent.proc.kill('SIGTERM');
    await agent.exited;
    return agent.lines.filter((l) => !l.startsWith('{')).join('');
  }

  it("is the broker's packet parser's with DEBUG set, and nothing without it", async () => {
    expect(await stderrAfterOneReading({ DEBUG: 'mqtt-packet:parser' })).toContain('mqtt-packet:parser parse: current state');
    expect(await stderrAfterOneReading({ DEBUG: '' })).not.toContain('mqtt-packet');
  });
});

describe('npm run map-stack (the minified bundles named back by their source maps)', () => {
  it("gives the agent's and its database thread's places as their sources' files and lines, and leaves other places", () => {
    const maps = loadMaps(join(ROOT, 'dist/bundle'));
    const places = [
      { bundle: 'dist/bundle/agent.cjs', source: 'agent/cli.ts', literal: 'second signal, exiting now' },
      { bundle: 'dist/bundle/workers/db-host.cjs', source: 'agent/consume/db/db-thread.ts', literal: 'large_object_space' },
    ];
    for (const { bundle, source, literal } of places) {
      const frame = frameAt(join(ROOT, bundle), `"${literal}"`);
      const unmapped = ['    at node:internal/main/run_main_module:28:49', '    at y (/elsewhere/other.cjs:1:10)'];
      const trace = ['Error: x', frame, ...unmapped, ''].join('\n');
      expect(trace).not.toContain(source); // control
      const mapped = mapStack(trace, maps).split('\n');
      expect(mapped[0]).toBe('Error: x');
      expect(mapped[1]).toMatch(new RegExp(`^    at x \\(${source.replaceAll('.', '\\.')}:${lineOf(source, literal)}:\\d+\\)$`));
      expect(mapped.slice(2)).toEqual([...unmapped, '']);
    }
  });
});

describe('the code cache of the bundled command', () => {
  it("is made for Node without flags and for the unit's flags, and taken by each", async () => {
    expect(readdirSync(join(ROOT, 'dist/bundle/code-cache'))).toHaveLength(2);
    for (const args of [[], PRODUCTION_NODE.args]) {
      const { cache, stdout } = await versionWith(args);
      expect(cache, args.join(' ')).toMatch(/^[0-9a-f]{40} accepted$/);
      expect(stdout).toMatch(new RegExp(`^${VERSION.replaceAll('.', '\\.')} \\(Node `));
    }
  });

  it('is not looked for under other flags: the command compiles the bundle and works as before', async () => {
    const { cache, stdout } = await versionWith(['--stack-size=900']);
    expect(cache).toMatch(/^none for [0-9a-f]{40}$/);
    expect(stdout).toMatch(new RegExp(`^${VERSION.replaceAll('.', '\\.')} \\(Node `));
  });

  it('is not taken for a bundle changed since, even by one byte of the same length (V8 checks only the length)', async () => {
    const dir = tempDir();
    cpSync(join(ROOT, 'dist/bundle'), join(dir, 'bundle'), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    const bundle = join(dir, 'bundle/agent.cjs');
    const text = readFileSync(bundle, 'latin1');
    const from = `version:"${VERSION}"`;
    const changed = `version:"${VERSION.replace(/\d$/, (d) => String((Number(d) + 1) % 10))}"`;
    expect(text).toContain(from);
    expect(changed).toHaveLength(from.length);
    // The control: the copy as built, its cache taken.
    const copy = join(dir, 'bundle/edge-agent.cjs');
    expect((await versionWith([], copy)).cache).toMatch(/ accepted$/);
    writeFileSync(bundle, text.replace(from, changed), 'latin1');
    const { cache, stdout } = await versionWith([], copy);
    expect(cache).toMatch(/^none for /);
    expect(stdout).toContain(changed.slice('version:"'.length, -1));
  });
});
