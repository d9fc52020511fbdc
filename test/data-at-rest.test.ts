// Data at rest is private: the data folder 0700 and every file in it 0600, also what an earlier
// version or a careless umask left behind.
import { chmodSync, lstatSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanup, startAgent, tempDir } from './helpers/agent.js';
import { connect } from './helpers/mqtt.js';

/** Each entry's mode, and what it should be (0700 for a folder, 0600 for anything else). */
function modes(root: string): Record<string, { mode: string; want: string }> {
  const out: Record<string, { mode: string; want: string }> = {};
  const walk = (path: string, name: string) => {
    const st = lstatSync(path);
    out[name] = { mode: (st.mode & 0o777).toString(8), want: st.isDirectory() ? '700' : '600' };
    if (st.isDirectory()) for (const child of readdirSync(path)) walk(join(path, child), `${name}/${child}`);
  };
  walk(root, '.');
  return out;
}

describe('data at rest', () => {
  const dir = tempDir();
  afterAll(() => cleanup(dir));

  it('makes the data folder 0700 and every file 0600 at start-up, whatever the umask', async () => {
    const data = join(dir, 'data');
    mkdirSync(join(data, 'old'), { recursive: true, mode: 0o755 });
    writeFileSync(join(data, 'old', 'readings.jsonl'), '{}\n', { mode: 0o644 });
    chmodSync(data, 0o755);
    process.umask(0o022);
    const agent = await startAgent({}, dir);
    const client = await connect(agent.mqttUrl);
    await client.publishAsync('t/x', '{"v":1}', { qos: 1 });
    await client.endAsync();
    expect(await agent.runtime.store!.caughtUp(agent.runtime.log.lastSeq)).toBe(true);
    const running = modes(data);
    await agent.stop();
    const entries = Object.entries({ ...running, ...modes(data) });
    // Positive control: the walk saw the store, the log and the broker's files.
    expect(Object.keys(running)).toEqual(expect.arrayContaining(['./store.db', './log', './broker', './old/readings.jsonl']));
    const open = entries.filter(([, { mode, want }]) => mode !== want);
    expect(open).toEqual([]);
  });
});
