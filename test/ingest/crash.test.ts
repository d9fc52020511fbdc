// The promise of the product: a reading the agent acknowledged survives any kill, exactly once.
import { join } from 'node:path';
import Database from 'better-sqlite3-multiple-ciphers';
import { afterAll, describe, expect, it } from 'vitest';
import { DurableLog } from '../../agent/log/durable-log.js';
import { cleanup, portOf, spawnAgent, tempDir, writeConfig, type ChildAgent } from '../helpers/agent.js';
import { seededRandom } from '../helpers/seed.js';
import { TrackingPublisher } from '../helpers/tracking-publisher.js';
import { quiet } from '../helpers/logger.js';
import { until } from '../helpers/servers.js';
import { openStoreFile } from '../helpers/store-file.js';

const KILLS = 12;
const PUBLISHERS = 4;

describe('crash safety under QoS 1 load', () => {
  const dir = tempDir();
  const config = writeConfig(dir, { buffer: { maxDelayMs: 5, maxRecords: 500 } });
  const logDir = join(dir, 'data', 'log');
  const storePath = join(dir, 'data', 'store.db');
  const rollupsPath = join(dir, 'data', 'rollups.db');
  let agent: ChildAgent | undefined;
  afterAll(() => {
    agent?.proc.kill('SIGKILL');
    cleanup(dir);
  });

  /** Every reading in the log, read through an audit consumer that never commits (so nothing is deleted). */
  async function readLog(): Promise<{ seq: number; key: string }[]> {
    const log = await DurableLog.open({
      dir: logDir,
      agentId: 'audit',
      maxDelayMs: 5,
      maxRecords: 500,
      deadLetters: { maxCount: 10, maxBytes: 1 << 20, payloadCapBytes: 4096, whenFull: 'dropOldest' },
      logger: quiet,
    });
    await log.registerConsumer('audit');
    const out: { seq: number; key: string }[] = [];
    for (let after = 0; ;) {
      const batch = await log.read('audit', after, 10_000);
      if (!batch.length) break;
      out.push(...batch.map((r) => ({ seq: r.seq, key: (r.payload as { key: string }).key })));
      after = batch[batch.length - 1].seq;
    }
    await log.close();
    return out;
  }

  /** Sum of field v over every stored reading. */
  function storeValueSum(): number {
    const db = openStoreFile(storePath);
    const { total } = db.prepare("SELECT sum(json_extract(payload, '$.v')) AS total FROM readings").get() as { total: number };
    db.close();
    return total;
  }

  function readStore(): { seq: number; key: string }[] {
    const db = openStoreFile(storePath);
    const rows = db.prepare("SELECT seq, json_extract(payload, '$.key') AS key FROM readings ORDER BY seq").all() as {
      seq: number;
      key: string;
    }[];
    db.close();
    return rows;
  }

  /** The rollups' 1m buckets of field v over all topics: readings counted, their sum, and the last seq applied. */
  function readRollups(): { count: number; sum: number; applied: number } {
    const db = new Database(rollupsPath, { readonly: true });
    const totals = db
      .prepare("SELECT coalesce(sum(count), 0) AS count, coalesce(sum(sum), 0) AS sum FROM rollups WHERE width_ms = 60000 AND field = 'v'")
      .get() as { count: number; sum: number };
    const applied = Number(
      (db.prepare("SELECT value FROM meta WHERE key = 'applied_seq'").get() as { value: string } | undefined)?.value ?? 0,
    );
    db.close();
    return { ...totals, applied };
  }

  const random = seededRandom();
  function exactlyOnce(entries: { seq: number; key: string }[], acked: Set<string>, at: string) {
    const where = `${at} (replay with CRASH_SEED=${random.seed})`;
    const keys = entries.map((e) => e.key);
    expect(new Set(keys).size, `${where}: a reading appears twice`).toBe(keys.length);
    const seqs = entries.map((e) => e.seq);
    expect(
      seqs.every((s, i) => i === 0 || s > seqs[i - 1]),
      `${where}: seq repeated or out of order`,
    ).toBe(true);
    const present = new Set(keys);
    const missing = [...acked].filter((k) => !present.has(k));
    expect(missing, `${where}: acknowledged readings lost`).toEqual([]);
  }

  it(`loses and duplicates nothing acknowledged across ${KILLS} SIGKILLs`, async () => {
    // An audit consumer registered up front keeps every chunk in the log for inspection.
    await readLog();
    const acked = new Set<string>();
    let logged: { seq: number; key: string }[] = [];
    let totalAckedPerKill: number[] = [];
    for (let kill = 0; kill < KILLS; kill++) {
      agent = await spawnAgent(['--config', config]);
      // After the restart the store catches up with everything the log holds, exactly once.
      const lastLogged = logged.at(-1)?.seq ?? 0;
      await until(() => (readStore().at(-1)?.seq ?? 0) >= lastLogged, 15_000, 'the store caught up').catch(() => {}); // exactlyOnce says what is missing
      exactlyOnce(readStore(), acked, `store after restart ${kill}`);

      const port = portOf(agent.listeners.mqtt);
      const publishers = Array.from({ length: PUBLISHERS }, (_, p) => new TrackingPublisher(`k${kill}p${p}`, `load/p${p}`));
      publishers.forEach((p) => p.start(port));
      // On a busy machine connecting can take longer than the shortest delay: the kill lands under load.
      await until(() => publishers.some((p) => p.acked.size > 0), 15_000, 'acknowledgements flowing');
      await new Promise((r) => setTimeout(r, 150 + random.next() * 600));
      agent.proc.kill('SIGKILL');
      await agent.exited;
      publishers.forEach((p) => p.stop());
      const before = acked.size;
      for (const p of publishers) for (const k of p.acked) acked.add(k);
      totalAckedPerKill.push(acked.size - before);

      logged = await readLog();
      exactlyOnce(logged, acked, `log after kill ${kill}`);
    }
    agent = await spawnAgent(['--config', config]);
    await until(() => (readStore().at(-1)?.seq ?? 0) >= (logged.at(-1)?.seq ?? 0), 15_000, 'the store caught up').catch(() => {});
    exactlyOnce(readStore(), acked, 'store at the end');
    expect(readStore().length).toBe(logged.length);
    // The rollups, killed as often, count every reading in the log once: neither lost nor counted twice.
    const last = logged.at(-1)!.seq;
    await until(() => readRollups().applied >= last, 30_000, 'the rollups caught up').catch(() => {});
    const rolled = readRollups();
    expect(rolled.applied).toBe(last);
    expect(rolled.count, `rollups (replay with CRASH_SEED=${random.seed})`).toBe(logged.length);
    expect(rolled.sum).toBe(storeValueSum());
    // The load was real: every kill landed while acknowledgements were flowing.
    expect(totalAckedPerKill.every((n) => n > 0)).toBe(true);
    expect(acked.size).toBeGreaterThan(KILLS * 100);
    agent.proc.kill('SIGTERM');
    await agent.exited;
    totalAckedPerKill = [];
  }, 180_000);
});
