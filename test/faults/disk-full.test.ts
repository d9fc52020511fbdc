// A full disk, for real: the data directory on a small tmpfs this test mounts (CI runs as root).
// Nothing unwritten is acknowledged, nothing taken is lost, and the agent recovers by itself.
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync, statfsSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FilesStore, topicFolder } from '../../agent/consume/store/files.js';
import { freePort } from '../../scripts/servers.js';
import { isRoot, smallDisk, unmountDisks } from '../helpers/disk.js';
import { cleanup, spawnAgent, startAgent, tempDir, writeConfig, type InProcessAgent } from '../helpers/agent.js';
import { connect } from '../helpers/mqtt.js';
import { batch, record, T0 } from '../helpers/records.js';
import { TrackingPublisher } from '../helpers/tracking-publisher.js';
import { adminClient, authHeader } from '../helpers/web.js';
import { until } from '../helpers/servers.js';

/** Disk pressure off: these tests fill the disk faster than a pressure check would see it (another process, say). */
const NO_WATERMARKS = { retention: { disk: { warn: '0B', act: '0B', critical: '0B', reserve: '0B' } } };
const agents: InProcessAgent[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop();
  unmountDisks();
});

/** Fill the filesystem to the last byte; returns the filler's path (delete it to free the space). */
function fill(dir: string): string {
  const path = join(dir, 'filler');
  const fd = openSync(path, 'w');
  const block = Buffer.alloc(64 * 1024, 1);
  try {
    for (;;) writeSync(fd, block);
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
  return path;
}

/** Without credentials /health/ready gives the states without their reasons; with them, the reasons too. */
async function ready(
  port: number,
  headers: Record<string, string> = {},
): Promise<{ code: number; body: { status: string; parts: { name: string; state: string }[] } }> {
  const res = await fetch(`http://127.0.0.1:${port}/health/ready`, { headers });
  return { code: res.status, body: await res.json() };
}

describe.runIf(isRoot)('disk full (tmpfs)', () => {
  it('holds publishers while the log cannot commit, acknowledges nothing unwritten, and resumes by itself once space returns', async () => {
    const data = smallDisk(24);
    const agent = await startAgent({ agent: { dataDir: data }, store: { gatherMs: 50 }, ...NO_WATERMARKS });
    agents.push(agent);
    const web = agent.port('http');
    const mqttPort = agent.port('mqtt');
    // Positive control: readings flow and are acknowledged before the disk fills.
    const publishers = [new TrackingPublisher('full-a', 'disk/a'), new TrackingPublisher('full-b', 'disk/b')];
    publishers.forEach((p) => p.start(mqttPort));
    const acked = () => publishers.reduce((n, p) => n + p.acked.size, 0);
    expect(await until(() => acked() > 200, 10_000)).toBe(true);

    const filler = fill(data);
    expect(await until(() => agent.runtime.log.status().state === 'refusing: disk full', 20_000)).toBe(true);
    // 3,000 QoS 0 readings of 1.5 KB (4.5 MB, more than buffer.maxPendingBytes) at full speed.
    const qos0 = await connect(agent.mqttUrl, { clientId: 'qos0-during-outage' });
    for (let i = 0; i < 3000; i++) qos0.publish('disk/q0', JSON.stringify({ i, pad: 'q'.repeat(1500) }), { qos: 0 });
    // Held: no PUBACK across two more failed commits (each would have acknowledged what it wrote),
    // and the QoS 0 sender is slowed by TCP instead of being read into memory.
    const heldAt = acked();
    const failedAt = () => agent.runtime.log.status().lastError?.at;
    for (let i = 0; i < 2; i++) {
      const seen = failedAt();
      await until(() => failedAt() !== seen, 20_000, 'another failed commit');
    }
    expect(acked()).toBe(heldAt);
    expect(agent.runtime.log.pendingBytes).toBeLessThan(512 * 1024);
    const during = await ready(web, authHeader(adminClient(agent).creds));
    expect(during.code).toBe(503);
    expect(during.body.parts).toContainEqual(expect.objectContaining({ name: 'log', state: 'refusing: disk full' }));

    rmSync(filler);
    expect(await until(() => acked() > heldAt + 200, 20_000)).toBe(true); // publishing resumed, no restart
    publishers.forEach((p) => p.stop());
    await qos0.endAsync();
    expect(await until(async () => (await ready(web)).code === 200, 20_000)).toBe(true);
    expect(await agent.runtime.store!.caughtUp(agent.runtime.log.lastSeq, 20_000)).toBe(true);

    const rows = await agent.runtime.store!.target.query({ limit: 1_000_000 });
    const keys = rows.filter((r) => r.topic !== 'disk/q0').map((r) => (r.payload as { key: string }).key);
    expect(new Set(keys).size, 'a reading stored twice').toBe(keys.length);
    const stored = new Set(keys);
    const missing = publishers.flatMap((p) => [...p.acked]).filter((k) => !stored.has(k));
    expect(missing, 'acknowledged readings lost').toEqual([]);
    // QoS 0 under `block` was slowed by TCP, not taken in and lost.
    expect(rows.filter((r) => r.topic === 'disk/q0').map((r) => (r.payload as { i: number }).i)).toEqual([...Array(3000).keys()]);
  }, 90_000);

  it('files store: an append the disk cuts short is cut back to the last whole line; once space returns each reading is written once', async () => {
    const data = smallDisk(2);
    const store = new FilesStore({ dir: join(data, 'store'), now: () => T0 });
    await store.write(batch([record(1, 'big')]));
    // Leave 256 KiB free: some but not all of the next batch (250 readings of 4 KB, 1 MB in all).
    const { bavail, bsize } = statfsSync(data);
    const partly = join(data, 'filler');
    writeFileSync(partly, Buffer.alloc(Number(bavail) * Number(bsize) - 256 * 1024));
    const big = (seq: number) => ({ ...record(seq, 'big'), payload: { seq, pad: 'p'.repeat(4000) } });
    const many = Array.from({ length: 250 }, (_, i) => big(i + 2));
    await expect(store.write(batch(many))).rejects.toMatchObject({ code: 'ENOSPC' });
    const file = join(data, 'store', topicFolder('big'), '2026-11-30T10.jsonl');
    const text = readFileSync(file, 'utf8');
    expect(text.endsWith('\n')).toBe(true); // no torn line left behind
    expect(
      text
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l).seq),
    ).toEqual([1]);
    rmSync(partly);
    await store.write(batch(many));
    expect((await store.query({ limit: 1000 })).map((r) => r.seq)).toEqual(Array.from({ length: 251 }, (_, i) => i + 1));
    await store.close();
  });

  it('starts on a full disk: up and saying why, then ready and storing once space returns', async () => {
    const data = smallDisk(8);
    const dir = tempDir();
    const http = await freePort();
    const config = writeConfig(dir, { agent: { dataDir: data }, web: { http: { port: http } }, store: { gatherMs: 50 }, ...NO_WATERMARKS });
    const filler = fill(data);
    const starting = spawnAgent(['run', '-c', config]);
    starting.catch(() => {});
    let report: Awaited<ReturnType<typeof ready>> | undefined;
    expect(
      await until(async () => {
        report = await ready(http).catch(() => undefined);
        return report?.body.parts.some((p) => p.name === 'log' && p.state === 'refusing') ?? false;
      }, 20_000),
    ).toBe(true);
    expect(report!.code).toBe(503);
    rmSync(filler);
    const agent = await starting;
    try {
      const client = await connect(`mqtt://${agent.listeners.mqtt}`);
      await client.publishAsync('boot/t', '{"v":1}', { qos: 1 });
      await client.endAsync();
      expect(await until(async () => (await ready(http)).code === 200, 20_000)).toBe(true);
      const rows = () =>
        execFileSync('sqlite3', [join(data, 'store.db'), "select topic || ' ' || payload from readings"])
          .toString()
          .trim();
      expect(await until(() => rows() !== '', 10_000)).toBe(true);
      expect(rows()).toBe('boot/t {"v":1}');
    } finally {
      agent.proc.kill('SIGTERM');
      await agent.exited;
      cleanup(dir);
    }
  }, 60_000);
});
