// SIGKILL the agent while it forwards batches to PostgreSQL under load: after the restarts every
// acknowledged reading is in the table exactly once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { askAgent, controlSocketPath } from '../../agent/control/socket.js';
import type { SinkStatus } from '../../agent/consume/sinks/index.js';
import { cleanup, portOf, spawnAgent, tempDir, writeConfig, type ChildAgent } from '../helpers/agent.js';
import { createDatabase, PG_PASSWORD, until, type TestDatabase } from '../helpers/servers.js';
import { seededRandom } from '../helpers/seed.js';
import { TrackingPublisher } from '../helpers/tracking-publisher.js';

const KILLS = 8;
const PUBLISHERS = 3;

describe('sync crash safety', () => {
  const dir = tempDir();
  let db: TestDatabase;
  let config: string;
  let agent: ChildAgent | undefined;
  beforeAll(async () => {
    db = await createDatabase();
    config = writeConfig(dir, {
      store: { backend: 'none' },
      sinks: [{ name: 'cloud', type: 'postgres', url: db.url, password: PG_PASSWORD, batch: { maxRecords: 400, maxAgeMs: 20 } }],
    });
  });
  afterAll(async () => {
    agent?.proc.kill('SIGKILL');
    await db.drop();
    cleanup(dir);
  });

  const status = async () => ((await askAgent(controlSocketPath(`${dir}/data`), '/sync/status')) as { sinks: SinkStatus[] }).sinks[0];

  it(`no loss and no duplicate rows across ${KILLS} SIGKILLs in the middle of batches`, async () => {
    const random = seededRandom();
    const replay = `(replay with CRASH_SEED=${random.seed})`;
    const acked = new Set<string>();
    let killedWhileSending = 0;
    for (let kill = 0; kill < KILLS; kill++) {
      agent = await spawnAgent(['--config', config]);
      const port = portOf(agent.listeners.mqtt);
      const publishers = Array.from({ length: PUBLISHERS }, (_, p) => new TrackingPublisher(`k${kill}p${p}`, `load/p${p}`, 50));
      publishers.forEach((p) => p.start(port));
      await new Promise((r) => setTimeout(r, 300 + random.next() * 700));
      const before = await status();
      if (before.lagRecords > 0 && before.sent.requests > 0) killedWhileSending++;
      agent.proc.kill('SIGKILL');
      await agent.exited;
      publishers.forEach((p) => p.stop());
      for (const p of publishers) for (const k of p.acked) acked.add(k);
    }
    agent = await spawnAgent(['--config', config]);
    await until(async () => (await status()).lagRecords === 0, 60_000, 'the backlog to drain');

    const rows = await db.query<{ seq: string; key: string }>("SELECT seq, payload->>'key' AS key FROM telemetry ORDER BY seq");
    const keys = rows.map((r) => r.key);
    expect(new Set(keys).size, `a reading stored twice ${replay}`).toBe(keys.length);
    const stored = new Set(keys);
    expect(
      [...acked].filter((k) => !stored.has(k)),
      `acknowledged readings missing ${replay}`,
    ).toEqual([]);
    // Each publisher's readings are in the table in the order they were sent.
    const byPublisher = new Map<string, number[]>();
    for (const k of keys) {
      const [who, n] = k.split(':');
      byPublisher.set(who, [...(byPublisher.get(who) ?? []), Number(n)]);
    }
    for (const ns of byPublisher.values()) expect(ns, `out of order ${replay}`).toEqual([...ns].sort((a, b) => a - b));
    expect(acked.size).toBeGreaterThan(KILLS * 100);
    expect(killedWhileSending, `kills with a batch in flight ${replay}`).toBeGreaterThan(KILLS / 2);
  }, 240_000);
});
