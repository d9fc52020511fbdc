// Chaos: a soak at a steady rate (sensors at QoS 0 and 1, a PostgreSQL sink, rollups, a viewer
// asking for data): open file descriptors stay flat, and the resident memory's slope is reported
// (`npm run bench -- memory` holds it to its target). The short run lasts a minute, the full ten.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, PRODUCTION_NODE, spawnAgent, tempDir, writeConfig, type ChildAgent } from '../helpers/agent.js';
import { createDatabase, PG_PASSWORD, type TestDatabase } from '../helpers/servers.js';
import { chaos, record, scale, slopePer10Min } from './chaos.js';

const SECONDS = scale(30, 600);
const WARM_UP = scale(10, 120);
const SENSORS = 10;
const HZ = 10;

const rssMb = (pid: number) => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
const openFds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

describe('chaos: a soak at a steady rate', () => {
  const dir = tempDir();
  let db: TestDatabase;
  let agent: ChildAgent;
  beforeAll(async () => {
    db = await createDatabase();
    const config = writeConfig(dir, { sinks: [{ name: 'pg', type: 'postgres', url: db.url, password: PG_PASSWORD }] });
    agent = await spawnAgent(['--config', config], PRODUCTION_NODE.env, PRODUCTION_NODE.args);
  });
  afterAll(async () => {
    agent.proc.kill('SIGTERM');
    await agent.exited;
    await db.drop();
    cleanup(dir);
  });

  it(
    `holds its open files flat over ${SECONDS} s`,
    async () => {
      const r = chaos('soak');
      const pid = agent.proc.pid!;
      const sensors = Array.from({ length: SENSORS }, (_, i) =>
        mqtt.connect(`mqtt://${agent.listeners.mqtt}`, { clientId: `soak-${i}`, reconnectPeriod: 0 }),
      );
      let sent = 0;
      const tickers = sensors.map((client, i) =>
        setInterval(() => {
          client.publish(`soak/s${i}`, JSON.stringify({ t: 20 + r.next(), n: sent++ }), { qos: i % 2 ? 1 : 0 });
        }, 1000 / HZ),
      );
      const admin = `admin:${readFileSync(join(dir, 'data', 'initial-admin-password'), 'utf8').trim()}`;
      const auth = { authorization: `Basic ${Buffer.from(admin).toString('base64')}` };
      let viewed = 0;
      const viewer = setInterval(() => {
        void fetch(`http://${agent.listeners.http}/api/data?topic=soak%2F%23&limit=100`, { headers: auth }).then((res) => {
          if (res.ok) viewed++;
          return res.arrayBuffer();
        });
      }, 2000);
      const samples: { t: number; rss: number; fds: number }[] = [];
      const started = performance.now();
      const sampler = setInterval(
        () => samples.push({ t: (performance.now() - started) / 1000, rss: rssMb(pid), fds: openFds(pid) }),
        1000,
      );
      await new Promise((res) => setTimeout(res, SECONDS * 1000));
      [sampler, viewer, ...tickers].forEach(clearInterval);
      sensors.forEach((c) => c.end(true));

      const warm = samples.filter((s) => s.t < WARM_UP);
      const after = samples.filter((s) => s.t >= WARM_UP);
      const fdSlope = slopePer10Min(after.map((s) => ({ t: s.t, y: s.fds })));
      const rssSlope = slopePer10Min(after.map((s) => ({ t: s.t, y: s.rss })));
      const found = {
        'readings sent': sent,
        'data pages viewed': viewed,
        'open files after warm-up (min-max)': `${Math.min(...after.map((s) => s.fds))}-${Math.max(...after.map((s) => s.fds))}`,
        'open files slope (per 10 min)': Number(fdSlope.toFixed(2)),
        'RSS after warm-up (min-max, MB)': `${Math.min(...after.map((s) => s.rss)).toFixed(0)}-${Math.max(...after.map((s) => s.rss)).toFixed(0)}`,
        'RSS slope (MB per 10 min)': Number(rssSlope.toFixed(1)),
      };
      console.log(`soak: ${JSON.stringify(found)}`);
      // Open files: never more than during the warm-up, give or take a connection coming and going.
      expect(Math.max(...after.map((s) => s.fds)), `open files grew ${r.replay}`).toBeLessThanOrEqual(
        Math.max(...warm.map((s) => s.fds)) + 2,
      );
      // The controls: the load and the viewer were there throughout.
      expect(sent).toBeGreaterThan(SENSORS * HZ * SECONDS * 0.8);
      expect(viewed).toBeGreaterThan(SECONDS / 4);
      record({
        scenario: 'soak',
        title: `a soak of ${SECONDS} s at ${SENSORS * HZ} readings/s (half QoS 1), PostgreSQL sink, rollups, a viewer every 2 s`,
        seed: r.seed,
        full: SECONDS >= 600,
        seconds: SECONDS,
        did: { sensors: SENSORS, 'readings/s': SENSORS * HZ, 'warm-up (s)': WARM_UP },
        found,
      });
    },
    (SECONDS + 60) * 1000,
  );
});
