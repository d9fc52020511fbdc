// The single executable, built here (the addons are cached in .cache/binary; the first build
// compiles two of them for the embedded Node, about two minutes): it reports its Node, runs the
// smoke test (MQTT in, HTTP API out, PostgreSQL), and loads native code only from a private folder.
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBinary, EMBEDDED_NODE } from '../../scripts/binary/build.js';
import { smokeTest } from '../../scripts/binary/smoke.js';
import { cleanup, tempDir } from '../helpers/agent.js';

const run = promisify(execFile);

describe('the single executable (x64)', () => {
  let binary: string;
  const dirs: string[] = [];
  beforeAll(async () => {
    binary = await buildBinary('x64');
  }, 900_000);
  afterAll(() => dirs.forEach(cleanup));

  it('says its version, the Node it embeds and its architecture', async () => {
    const { stdout } = await run(binary, ['--version']);
    expect(stdout.trim()).toMatch(new RegExp(`^\\d+\\.\\d+\\.\\d+ \\(Node v${EMBEDDED_NODE.replaceAll('.', '\\.')}, linux-x64, single executable\\)$`));
  });

  it('passes the smoke test: a reading published over MQTT is read back over HTTP and forwarded to PostgreSQL', async () => {
    const r = await smokeTest([binary]);
    expect(r.version).toContain(`Node v${EMBEDDED_NODE}`);
    expect(r.readyMs).toBeGreaterThan(0);
  }, 180_000);

  it('writes its native code to a folder of its own (0700) and refuses one others may write to', async () => {
    const cache = tempDir();
    dirs.push(cache);
    await run(binary, ['--version'], { env: { ...process.env, XDG_CACHE_HOME: cache } });
    const folder = join(cache, 'edge-agent');
    expect(statSync(folder).mode & 0o777).toBe(0o700);
    // The control above loaded from a private folder; a folder others may write to is refused, with the reason.
    const open = tempDir();
    dirs.push(open);
    mkdirSync(join(open, 'edge-agent'), { mode: 0o777 });
    chmodSync(join(open, 'edge-agent'), 0o777);
    const refused = await run(binary, ['--version'], { env: { ...process.env, XDG_CACHE_HOME: open } }).then(
      () => null,
      (err: { code: number; stderr: string }) => err,
    );
    expect(refused?.code).not.toBe(0);
    expect(refused?.stderr).toMatch(/not a folder of this user's alone; native code is not loaded from it/);
  });
});
