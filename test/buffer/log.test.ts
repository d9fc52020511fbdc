import { randomBytes } from 'node:crypto';
import { cpSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterEach, describe, expect, it } from 'vitest';
import { Journal } from '../../agent/log/journal.js';
import { DurableLog, WrongKeyError, type DurableLogOptions } from '../../agent/log/durable-log.js';
import { openLevel, type Level } from '../../agent/log/level-store.js';
import type { NewRecord } from '../../agent/log/record.js';
import { cleanup, tempDir } from '../helpers/agent.js';
import { quiet } from '../helpers/logger.js';

const errors: object[] = [];
const infos: string[] = [];
const recording = {
  ...quiet,
  error: (o: object) => errors.push(o),
  info: (_: object, msg: string) => infos.push(msg),
} as unknown as DurableLogOptions['logger'];
const FROM_JOURNAL = 'log: chunks of commits since the last checkpoint moved from the journal into LevelDB';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach(cleanup));

function options(dir: string, extra: Partial<DurableLogOptions> = {}): DurableLogOptions {
  return {
    dir,
    agentId: 'pi-test',
    maxDelayMs: 2,
    maxRecords: 50,
    deadLetters: { maxCount: 5, maxBytes: 1 << 20, payloadCapBytes: 4096, whenFull: 'dropOldest' },
    logger: recording,
    ...extra,
  };
}

function reading(i: number, topic = 't/a'): NewRecord {
  return {
    topic,
    receivedAt: 1_700_000_000_000 + i,
    clockSynced: true,
    payloadJson: JSON.stringify({ i, v: i * 1.5 }),
    clientId: 'c1',
    schema: 'env@1',
    qos: 1,
  };
}

async function fill(log: DurableLog, n: number, from = 0): Promise<number[]> {
  const appended = Array.from({ length: n }, (_, i) => log.append(reading(from + i)));
  await Promise.all(appended.map((a) => a.durable));
  return appended.map((a) => a.seq);
}

async function openLog(extra: Partial<DurableLogOptions> = {}, dir?: string) {
  const d = dir ?? tempDir();
  if (!dir) dirs.push(d);
  return { dir: d, log: await DurableLog.open(options(join(d, 'log'), extra)) };
}

/** Closed and opened again: the chunks the journal held since the last checkpoint are in LevelDB now. */
async function checkpointed(open: { dir: string; log: DurableLog }, extra: Partial<DurableLogOptions> = {}) {
  await open.log.close();
  return openLog(extra, open.dir);
}

describe('durable log', () => {
  it('assigns increasing seqs and returns readings in order, with every field', async () => {
    const { log } = await openLog();
    await log.registerConsumer('store');
    const seqs = await fill(log, 120);
    expect(seqs).toEqual(Array.from({ length: 120 }, (_, i) => i + 1));
    const got = await log.read('store', 0, 1000);
    expect(got).toHaveLength(120);
    expect(got[7]).toEqual({
      seq: 8,
      agentId: 'pi-test',
      topic: 't/a',
      receivedAt: 1_700_000_000_007,
      clockSynced: true,
      payload: { i: 7, v: 10.5 },
      clientId: 'c1',
      schema: 'env@1',
      qos: 1,
    });
    expect((await log.read('store', 100, 5)).map((r) => r.seq)).toEqual([101, 102, 103, 104, 105]);
    expect(log.stats().chunks).toBe(3); // at most maxRecords (50) per chunk
    await log.close();
  });

  it('commitBytes: readings waiting past it commit before the window ends (the default, 6 kB); raised, they wait for it', async () => {
    const twoTurns = async (log: DurableLog) => {
      const first = Array.from({ length: 200 }, (_, i) => log.append(reading(i))); // about 20 kB before compression
      await new Promise((r) => setTimeout(r, 5));
      const second = Array.from({ length: 200 }, (_, i) => log.append(reading(200 + i)));
      await Promise.all([...first, ...second].map((a) => a.durable));
      const commits = log.stats().commits;
      await log.close();
      return commits;
    };
    expect(await twoTurns((await openLog({ maxRecords: 1000, maxDelayMs: 200 })).log)).toBe(2); // the first 200 went at once
    expect(await twoTurns((await openLog({ maxRecords: 1000, maxDelayMs: 200, commitBytes: 1 << 20 })).log)).toBe(1);
  });

  it('group-commits: many appends share one fsync', async () => {
    const { log } = await openLog({ maxRecords: 1000, maxDelayMs: 20 });
    await fill(log, 500);
    expect(log.stats().commits).toBe(1);
    await log.close();
  });

  it("a power cut that takes LevelDB's unsynced writes: the journal brings back every synced commit (control: without it they are gone)", async () => {
    const { dir, log } = await openLog();
    await log.close();
    const logDir = join(dir, 'log');
    const snapshot = join(dir, 'snapshot');
    // LevelDB's files as a power cut right after this open would leave them (the open ended with a sync).
    cpSync(logDir, snapshot, { recursive: true, filter: (src) => !src.endsWith('edge-journal') });
    const again = await DurableLog.open(options(logDir));
    const seqs = await fill(again, 30);
    await again.close();
    const powerCut = (keepJournal: boolean) => {
      for (const f of readdirSync(logDir)) if (keepJournal ? f !== 'edge-journal' : true) rmSync(join(logDir, f), { recursive: true });
      cpSync(snapshot, logDir, { recursive: true });
    };
    const journal = readFileSync(join(logDir, 'edge-journal'));
    powerCut(true);
    const recovered = await DurableLog.open(options(logDir));
    await recovered.registerConsumer('store');
    expect((await recovered.read('store', 0, 1000)).map((r) => r.seq)).toEqual(seqs);
    await recovered.close();
    // The control: the same cut without the journal's frames loses them.
    powerCut(false);
    writeFileSync(join(logDir, 'edge-journal'), Buffer.alloc(journal.length));
    const lost = await DurableLog.open(options(logDir));
    await lost.registerConsumer('store');
    expect(await lost.read('store', 0, 1000)).toEqual([]);
    await lost.close();
  });

  it('a large commit skips the journal (LevelDB is synced instead), and so does every commit after it until then', async () => {
    const { dir, log } = await openLog({ maxRecords: 5000, syncIntervalMs: 60_000 });
    const journalFrames = async () => {
      const copy = join(dir, `journal-copy-${Date.now()}`);
      cpSync(join(dir, 'log', 'edge-journal'), copy);
      const { journal, frames } = await Journal.open(copy, readFileSync(copy).length);
      await journal.close();
      return frames.map((f) => f.number);
    };
    await fill(log, 1); // commit 1, small: a frame of the journal (the control: commits do reach it)
    expect(await journalFrames()).toEqual([1]);
    // Commit 2: QoS 0, 300 kB, unsynced: in LevelDB only.
    const noisy = (i: number): NewRecord => ({
      ...reading(i),
      qos: 0,
      payloadJson: JSON.stringify({ noise: randomBytes(32).toString('hex') }),
    });
    await Promise.all(Array.from({ length: 3000 }, (_, i) => log.append(noisy(i)).durable));
    expect(await journalFrames()).toEqual([1]);
    await fill(log, 1, 3000); // commit 3, QoS 1: a frame after a missing one would never be replayed; LevelDB is synced
    expect(await journalFrames()).toEqual([1]);
    await fill(log, 1, 3001); // commit 4: the journal again, from the ring's start
    expect(await journalFrames()).toEqual([4]);
    await log.close();
    const again = await DurableLog.open(options(join(dir, 'log')));
    await again.registerConsumer('store');
    expect((await again.read('store', 0, 5000)).map((r) => r.seq)).toEqual(Array.from({ length: 3003 }, (_, i) => i + 1));
    await again.close();
  });

  it('keeps cursors across restarts and deletes chunks only when every consumer passed them', async () => {
    const { dir, log } = await openLog();
    await log.registerConsumer('store');
    await log.registerConsumer('cloud');
    await fill(log, 200);
    await log.commit('store', 200);
    expect(log.stats().records).toBe(200); // cloud has not read them
    await log.commit('cloud', 120);
    expect(log.stats().firstSeq).toBeGreaterThan(100);
    expect(log.stats().firstSeq).toBeLessThanOrEqual(121);
    await log.close();
    const again = await DurableLog.open(options(join(dir, 'log')));
    expect(again.cursor('store')).toBe(200);
    expect(again.cursor('cloud')).toBe(120);
    expect((await again.read('cloud', 120, 1000)).map((r) => r.seq)).toEqual(Array.from({ length: 80 }, (_, i) => 121 + i));
    await again.close();
  });

  it("forgets a removed consumer's drop counts: one added again under its name counts only its own", async () => {
    const first = await openLog();
    await first.log.registerConsumer('sink:a');
    await first.log.registerConsumer('store');
    await fill(first.log, 3);
    await first.log.commit('store', 3);
    const { dir, log } = await checkpointed(first);
    expect((await log.dropOldestUnsent('disk pressure'))?.perConsumer).toEqual({ 'sink:a': 3 });
    expect(log.droppedFor('sink:a')).toEqual({ 'disk pressure': 3 }); // the control: counted for it
    await log.dropConsumer('sink:a');
    await log.registerConsumer('sink:a');
    // The three went before it was added (again): counted once, as that.
    const added = Object.entries(log.droppedFor('sink:a'));
    expect(added).toHaveLength(1);
    expect(added[0][1]).toBe(3);
    expect(added[0][0]).not.toBe('disk pressure');
    await log.close();
    const again = await DurableLog.open(options(join(dir, 'log')));
    expect(again.droppedFor('sink:a')).toEqual(Object.fromEntries(added)); // the removed counts are gone from disk too
    await again.close();
  });

  it('never reuses a seq after a restart, even when everything was consumed and deleted', async () => {
    const { dir, log } = await openLog();
    await log.registerConsumer('store');
    await fill(log, 30);
    await log.commit('store', 30);
    expect(log.stats().records).toBe(0);
    await log.close();
    infos.length = 0;
    const again = await DurableLog.open(options(join(dir, 'log')));
    expect(infos).not.toContain(FROM_JOURNAL); // the stop was a checkpoint, though no chunk was left to write
    expect(await fill(again, 2)).toEqual([31, 32]);
    await again.close();
  });

  it('never reuses a seq after a restart when the newest commit was large (into LevelDB at once) and then consumed', async () => {
    const { dir, log } = await openLog({ maxRecords: 1000 });
    await log.registerConsumer('store');
    await fill(log, 3); // small: the journal
    const noisy = Array.from({ length: 600 }, (_, i) =>
      log.append({ ...reading(i), payloadJson: JSON.stringify({ noise: randomBytes(32).toString('hex') }) }),
    );
    await Promise.all(noisy.map((a) => a.durable));
    expect(noisy.at(-1)!.seq).toBe(603);
    await log.commit('store', 603);
    await log.close();
    const again = await DurableLog.open(options(join(dir, 'log')));
    expect(await fill(again, 1)).toEqual([604]);
    await again.close();
  });

  it('never reuses a seq after a crash that followed everything being consumed, with no checkpoint since', async () => {
    const { dir, log } = await openLog();
    await log.registerConsumer('store');
    await fill(log, 30);
    await log.commit('store', 30);
    const crashed = join(dir, 'crashed');
    cpSync(join(dir, 'log'), crashed, { recursive: true });
    await log.close();
    const again = await DurableLog.open(options(crashed));
    expect(again.stats().records).toBe(0);
    expect(await fill(again, 2)).toEqual([31, 32]);
    await again.close();
  });

  it('quarantines a damaged or torn chunk at start-up, keeps the rest readable, and says which seqs', async () => {
    const { dir, log } = await openLog();
    await log.registerConsumer('store');
    await fill(log, 150); // chunks of 50: 1-50, 51-100, 101-150
    await log.close();
    const raw = new ClassicLevel<string, Uint8Array>(join(dir, 'log'), { valueEncoding: 'view' });
    const keys = await raw.keys({ gte: 'c!', lt: 'c"' }).all();
    const middle = Buffer.from((await raw.get(keys[1]))!);
    middle[middle.length - 3] ^= 0xff; // a flipped bit in the compressed body
    await raw.put(keys[1], middle);
    const last = (await raw.get(keys[2]))!;
    await raw.put(keys[2], last.subarray(0, last.length - 10)); // a torn write
    await raw.close();

    errors.length = 0;
    let db!: Level;
    const again = await DurableLog.open(options(join(dir, 'log'), { level: (d) => (db = openLevel(d)) }));
    expect(again.stats().quarantinedChunks).toBe(2);
    expect(errors).toEqual([
      expect.objectContaining({ firstSeq: 51, lastSeq: 100, reason: 'checksum mismatch' }),
      expect.objectContaining({ firstSeq: 101, lastSeq: 150, reason: 'checksum mismatch' }),
    ]);
    expect((await again.read('store', 0, 1000)).map((r) => r.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(await fill(again, 1)).toEqual([151]); // seqs of quarantined readings are not reused
    const moved = await db.keys({ gte: 'q!', lt: 'q"' }).all();
    expect(moved).toHaveLength(2);
    await again.close();
  });

  it('hands chunks over still compressed, checked, stopping at a chunk found damaged while running', async () => {
    let db!: Level;
    const written = await openLog();
    await written.log.registerConsumer('store');
    await fill(written.log, 150); // chunks of 50: 1-50, 51-100, 101-150
    const { log } = await checkpointed(written, { recentChunkBytes: 0, level: (d) => (db = openLevel(d)) }); // every read goes to LevelDB
    const keys = await db.keys({ gte: 'c!', lt: 'c"' }).all();
    const middle = Buffer.from((await db.get(keys[1]))!);
    middle[40] ^= 0xff;
    await db.put(keys[1], middle);

    errors.length = 0;
    const first = (await log.readChunks('store', 20, 1000))!;
    expect([first.firstSeq, first.lastSeq, first.chunks.length]).toEqual([21, 50, 1]);
    expect(
      first
        .decode()
        .records()
        .map((r) => r.seq),
    ).toEqual(Array.from({ length: 30 }, (_, i) => i + 21));
    expect(errors).toEqual([expect.objectContaining({ firstSeq: 51, lastSeq: 100, reason: 'checksum mismatch' })]);
    expect(log.stats().quarantinedChunks).toBe(1);
    const rest = (await log.readChunks('store', 50, 1000))!;
    expect([rest.firstSeq, rest.lastSeq, rest.count]).toEqual([101, 150, 50]);
    expect(await log.readChunks('store', 150, 1000)).toBeNull();
    await log.close();
  });

  it('reads every consecutive chunk while a commit drops chunks from the front of the list', async () => {
    const { log } = await openLog({ recentChunkBytes: 0 }); // reads wait on LevelDB, so the commit lands mid-read
    await log.registerConsumer('store');
    await fill(log, 300); // chunks of 50
    const reading = log.readChunks('store', 100, 1000);
    await log.commit('store', 100); // chunks 1-50 and 51-100 leave the list
    const batch = (await reading)!;
    expect([batch.firstSeq, batch.lastSeq, batch.chunks.length]).toEqual([101, 300, 4]);
    await log.close();
  });

  it('serves the newest chunks from memory as committed; older ones from disk', async () => {
    let db!: Level;
    const { dir, log } = await openLog({ level: (d) => (db = openLevel(d)) });
    await log.registerConsumer('store');
    // One commit larger than a journal frame: into LevelDB at once (the control that chunks are there to damage).
    await Promise.all(
      Array.from(
        { length: 600 },
        (_, i) => log.append({ ...reading(i), payloadJson: JSON.stringify({ noise: randomBytes(32).toString('hex') }) }).durable,
      ),
    );
    const keys = await db.keys({ gte: 'c!', lt: 'c"' }).all();
    expect(keys).toHaveLength(12);
    for (const key of keys) await db.put(key, Buffer.from('damaged on disk'));
    errors.length = 0;
    const batch = (await log.readChunks('store', 0, 1000))!;
    expect(
      batch
        .decode()
        .records()
        .map((r) => r.seq),
    ).toEqual(Array.from({ length: 600 }, (_, i) => i + 1));
    expect(errors).toEqual([]);
    await log.close();
    // A new process has nothing in memory: it reads the disk, and finds the damage.
    const again = await DurableLog.open(options(join(dir, 'log')));
    expect(await again.readChunks('store', 0, 1000)).toBeNull();
    expect(again.stats().quarantinedChunks).toBe(12);
    await again.close();
  });

  it('keeps the chunks of commits since the last checkpoint out of LevelDB; there at a checkpoint only if no consumer passed them', async () => {
    let db!: Level;
    const level = (d: string) => (db = openLevel(d));
    const first = await openLog({ level });
    await first.log.registerConsumer('store');
    await fill(first.log, 150); // chunks of 50
    expect(await db.keys({ gte: 'c!', lt: 'c"' }).all()).toEqual([]);
    expect((await first.log.read('store', 0, 1000)).map((r) => r.seq)).toEqual(Array.from({ length: 150 }, (_, i) => i + 1));
    await first.log.commit('store', 50); // the first chunk passed: never written to LevelDB
    infos.length = 0;
    const { log } = await checkpointed(first, { level });
    expect(infos).not.toContain(FROM_JOURNAL); // the stop was a checkpoint: nothing left in the journal for the start
    expect(await db.keys({ gte: 'c!', lt: 'c"' }).all()).toHaveLength(2);
    expect((await log.read('store', 50, 1000)).map((r) => r.seq)).toEqual(Array.from({ length: 100 }, (_, i) => i + 51));
    expect(await fill(log, 1)).toEqual([151]);
    await log.close();
  });

  it('after a crash, takes the chunks of commits since the last checkpoint from the journal; those every consumer had passed stay gone', async () => {
    const { dir, log } = await openLog();
    await log.registerConsumer('store');
    await fill(log, 150); // chunks of 50, in the journal only
    await log.commit('store', 50);
    // A crash: LevelDB and the journal as the process left them, no checkpoint.
    const crashed = join(dir, 'crashed');
    cpSync(join(dir, 'log'), crashed, { recursive: true });
    await log.close();
    let db!: Level;
    infos.length = 0;
    const again = await DurableLog.open(options(crashed, { level: (d) => (db = openLevel(d)) }));
    expect(infos).toContain(FROM_JOURNAL);
    expect(again.cursor('store')).toBe(50);
    expect((await again.read('store', 50, 1000)).map((r) => r.seq)).toEqual(Array.from({ length: 100 }, (_, i) => i + 51));
    expect(again.stats()).toMatchObject({ firstSeq: 51, records: 100 });
    expect((await db.keys({ gte: 'c!', lt: 'c"' }).all()).map((k) => parseInt(k.slice(2), 16))).toEqual([51, 101]);
    expect(await fill(again, 1)).toEqual([151]);
    await again.close();
  });

  it('hands readings over as chunk texts: from afterSeq, at most max of them, across chunks', async () => {
    const { log } = await openLog();
    await log.registerConsumer('sink');
    await fill(log, 150); // chunks of 50
    const batch = (await log.readTexts('sink', 40, 70))!;
    expect([batch.firstSeq, batch.lastSeq, batch.texts.length]).toEqual([41, 110, 3]);
    const seqs = Array.from({ length: 70 }, (_, i) => 41 + i);
    expect(seqs.map((seq) => JSON.parse(batch.line(seq)).seq)).toEqual(seqs);
    expect(JSON.parse(batch.line(110)).payload).toEqual({ i: 109, v: 163.5 });
    expect((await log.readTexts('sink', 140, 1000))!.lastSeq).toBe(150);
    expect(await log.readTexts('sink', 150, 1000)).toBeNull();
    await log.close();
  });

  it('encrypts chunks with AES-256-GCM: round trip, nothing readable on disk, wrong or missing key refused', async () => {
    const key = randomBytes(32);
    const { dir, log } = await openLog({ encryptionKey: key });
    await log.registerConsumer('store');
    await fill(log, 10);
    await log.close();
    const raw = new ClassicLevel<string, Uint8Array>(join(dir, 'log'), { valueEncoding: 'view' });
    for (const v of await raw.values({ gte: 'c!', lt: 'c"' }).all()) expect(Buffer.from(v).includes('"topic"')).toBe(false);
    await raw.close();

    const again = await DurableLog.open(options(join(dir, 'log'), { encryptionKey: key }));
    expect((await again.read('store', 0, 100)).map((r) => (r.payload as { i: number }).i)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await again.close();
    await expect(DurableLog.open(options(join(dir, 'log'), { encryptionKey: randomBytes(32) }))).rejects.toThrow(WrongKeyError);
    await expect(DurableLog.open(options(join(dir, 'log')))).rejects.toThrow(/the log is encrypted/);
  });

  it('keeps dead letters bounded, dropping and counting the oldest', async () => {
    const { dir, log } = await openLog();
    for (let i = 0; i < 8; i++) {
      await log.appendDeadLetter({
        time: i,
        topic: 'bad',
        clientId: 'c',
        payload: Buffer.from(`x${i}`),
        reasons: [{ path: '/v', message: 'must be number' }],
      });
    }
    expect(log.stats()).toMatchObject({ deadLetters: 5, deadLettersDropped: 3 });
    await log.close();
    const again = await DurableLog.open(options(join(dir, 'log')));
    const kept = await again.deadLetters(10);
    expect(kept.map((d) => d.time)).toEqual([7, 6, 5, 4, 3]);
    expect(again.stats().deadLettersDropped).toBe(3);
    await again.close();
  });

  it('wakes a waiting consumer when new readings are durable', async () => {
    const { log } = await openLog();
    await log.registerConsumer('store');
    // A wait far longer than the test may take: it returns only because the reading woke it.
    const waited = log.waitFor(0, 600_000);
    setTimeout(() => log.append(reading(1)), 50);
    await waited;
    expect(log.lastSeq).toBe(1);
    await log.close();
  });
});
