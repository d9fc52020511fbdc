// SD-card wear: the bytes the agent wrote since start, in all and by the store, and per reading.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { WriteRate } from '../agent/lib/disk-writes.js';
import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { storedLastSeq } from '../scripts/bench/ingest.js';
import { hobbyPayload, loopDisk, measureWear, settleAgent } from '../scripts/wear.js';
import { CLI, cleanup, portOf, PRODUCTION_NODE, spawnAgent, tempDir, writeConfig } from './helpers/agent.js';
import { isRoot } from './helpers/disk.js';
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
      // The rate a day needs a minute of samples; the card is the data filesystem, rated 1,000 full writes.
      expect(written.bytesPerDay).toBeNull();
      expect(written.card).toMatchObject({ ratedFullWrites: 1000, lifeYears: null });
      expect(written.card.bytes).toBe(s.disk.totalBytes);
      const text = (await exec(process.execPath, [CLI, 'sync', 'status', '--config', config])).stdout;
      expect(text).toMatch(
        /written since start: [\d.]+ MB \(store [\d.]+ MB, rollups [\d.]+ MB, log and sessions [\d.]+ MB\); \d+ bytes per reading \(2000 readings\)/,
      );
      expect(written.rollups).toBeGreaterThan(0); // the rollups' worker thread, counted apart
      // Free space against the watermarks, and what pressure made the agent delete (nothing here).
      expect(s.disk).toMatchObject({
        level: expect.any(String),
        relief: { storeForwarded: 0, deadLetters: 0, storeRolledUp: 0, logChunks: 0 },
      });
      expect(s.disk.freeBytes).toBeGreaterThan(0);
      expect(text).toMatch(
        /\ndisk: \w+ since \S+; [\d.]+ MB free of [\d.]+ MB \([\d.]+%\); watermarks warn [\d.]+ MB, act [\d.]+ MB, critical [\d.]+ MB, reserve [\d.]+ MB\n/,
      );
      expect(text).toMatch(
        /\ndeleted under disk pressure since start: 0 store readings every sink had, 0 dead letters, 0 store readings kept as rollups, 0 unsent log chunks/,
      );
    } finally {
      agent.proc.kill('SIGTERM');
      await agent.exited;
    }
  });

  it('the rate a day and the card life: from an hour of minute samples, none before a minute', () => {
    let now = 0;
    const rate = new WriteRate(() => now);
    rate.sample(1000);
    now = 30_000;
    expect(rate.perDay(2000)).toBeNull();
    now = 60_000;
    rate.sample(61_000);
    expect(rate.perDay(61_000)).toBe(60_000 * 1440); // 60 kB in a minute
    for (let m = 2; m <= 90; m++) {
      now = m * 60_000;
      rate.sample(61_000 + (m - 1) * 1000); // then 1 kB a minute
    }
    expect(rate.perDay(61_000 + 89 * 1000)).toBeCloseTo(1000 * 1440, -2); // the first hour's burst has aged out
  });

  // Where the card sees it: the device's own count, with the filesystem's journal and metadata. A byte
  // count, not a time: it does not flake on a busy machine. Root only (a loop device); CI runs as root.
  it.runIf(isRoot)(
    '10 sensors at 1 Hz, QoS 0, on the defaults: at most 600 bytes per reading reach the card (ext4 on a loop device)',
    async () => {
      const disk = loopDisk(256);
      const dir = tempDir();
      // The defaults, not the test helpers' short windows.
      const config = join(dir, 'config.yaml');
      writeFileSync(
        config,
        stringify({
          agent: { dataDir: join(disk.dir, 'data') },
          log: { level: 'warn' },
          broker: { mqtt: { host: '127.0.0.1', port: 0 } },
          web: { http: { host: '127.0.0.1', port: 0 } },
        }),
      );
      const agent = await spawnAgent(['--config', config], {}, PRODUCTION_NODE.args);
      try {
        // 30 s first: the files made. Then 150 s: at 10 readings/s the store and the rollups write every
        // 5 minutes; `sync flush` at each end has them write what they gathered, so the count holds
        // their write of the readings published in it, not only the log's (each write then serves half
        // the readings a day's would: the count errs high). Mostly idle, but it holds one of the
        // suite's workers for its length.
        const settle = settleAgent(join(disk.dir, 'data'));
        const run = await measureWear(
          disk,
          { port: portOf(agent.listeners.mqtt), sensors: 10, hz: 1, qos: 0, topic: (i) => `field/sensor-${i}`, payload: hobbyPayload },
          30,
          150,
          settle,
        );
        expect(run.readings).toBeGreaterThan(1450);
        // The store's write is in the count: it held the warm-up's ~300 readings at the start, now at least the count's.
        expect(storedLastSeq(join(disk.dir, 'data', 'store.db'))).toBeGreaterThan(run.readings);
        console.log(
          `wear, 10 x 1 Hz QoS 0: ${Math.round(run.bytesPerReading)} bytes per reading, ${(run.bytesPerDay / 1e6).toFixed(0)} MB a day`,
        );
        expect(run.bytesPerReading).toBeLessThanOrEqual(600);
      } finally {
        agent.proc.kill('SIGTERM');
        await agent.exited;
        disk.close();
        cleanup(dir);
      }
    },
    300_000,
  );
});
