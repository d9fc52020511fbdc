// SD-card wear: the bytes the agent wrote since start, in all and by the store, and per reading.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, cleanup, spawnAgent, tempDir, writeConfig } from './helpers/agent.js';
import { connect } from './helpers/mqtt.js';

const exec = promisify(execFile);

describe('bytes written (SD-card wear)', () => {
  const dir = tempDir();
  afterAll(() => cleanup(dir));

  it('sync status shows what the agent wrote since start: in all, by the store, per reading', async () => {
    const config = writeConfig(dir, { store: { gatherMs: 50 } });
    const agent = await spawnAgent(['--config', config]);
    try {
      const status = async () => JSON.parse((await exec(process.execPath, [CLI, 'sync', 'status', '--json', '--config', config])).stdout);
      const client = await connect(`mqtt://${agent.listeners.mqtt}`);
      const payload = JSON.stringify({ pad: 'w'.repeat(200) });
      for (let i = 0; i < 20; i++) await Promise.all(Array.from({ length: 100 }, () => client.publishAsync('wear/t', payload, { qos: 1 })));
      await client.endAsync();
      let s = await status();
      for (let i = 0; i < 50 && s.store.lagRecords + s.rollups.lagRecords > 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        s = await status();
      }
      expect(s.store.lagRecords).toBe(0);
      expect(s.rollups.lagRecords).toBe(0);
      const { written } = s;
      expect(written.readings).toBe(2000);
      expect(written.store).toBeGreaterThan(2000 * 200); // every payload reached the store's file at least once
      expect(written.total).toBeGreaterThanOrEqual(written.store + written.other - 1);
      expect(written.other).toBeGreaterThan(0); // the log
      expect(written.bytesPerReading).toBe(Math.round(written.total / 2000));
      const text = (await exec(process.execPath, [CLI, 'sync', 'status', '--config', config])).stdout;
      expect(text).toMatch(/written since start: [\d.]+ MB \(store [\d.]+ MB, rollups [\d.]+ MB, log and sessions [\d.]+ MB\); \d+ bytes per reading \(2000 readings\)/);
      expect(written.rollups).toBeGreaterThan(0); // the rollups' worker thread, counted apart
      // Free space against the watermarks, and what pressure made the agent delete (nothing here).
      expect(s.disk).toMatchObject({ level: expect.any(String), relief: { storeForwarded: 0, deadLetters: 0, storeRolledUp: 0, logChunks: 0 } });
      expect(s.disk.freeBytes).toBeGreaterThan(0);
      expect(text).toMatch(/\ndisk: \w+ since \S+; [\d.]+ MB free of [\d.]+ MB \([\d.]+%\); watermarks warn [\d.]+ MB, act [\d.]+ MB, critical [\d.]+ MB, reserve [\d.]+ MB\n/);
      expect(text).toMatch(/\ndeleted under disk pressure since start: 0 store readings every sink had, 0 dead letters, 0 store readings kept as rollups, 0 unsent log chunks/);
    } finally {
      agent.proc.kill('SIGTERM');
      await agent.exited;
    }
  });
});
