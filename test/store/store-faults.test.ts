// Stores after a failed write: consistent again, nothing written twice, nothing outside their folder.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3-multiple-ciphers';
import { afterEach, describe, expect, it } from 'vitest';
import { RecordFault } from '../../agent/lib/faults.js';
import { workerScript } from '../../agent/consume/db/db-worker.js';
import { FilesStore, topicFolder } from '../../agent/consume/store/files.js';
import { openStore } from '../../agent/consume/store/index.js';
import { defineSqlarUncompress } from '../../agent/consume/store/sqlite-db.js';
import { cleanup, tempDir } from '../helpers/agent.js';
import { batch, record, T0 } from '../helpers/records.js';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach(cleanup));
const dir = () => {
  const d = tempDir();
  dirs.push(d);
  return d;
};

const deep = '['.repeat(1500) + ']'.repeat(1500);

describe('SQLite store after a failed write', () => {
  it('refuses a row SQLite cannot read as JSON with a RecordFault, and the next writes (same new topic and client) succeed', async () => {
    const store = await openStore('sqlite', join(dir(), 'store.db'));
    const fresh = (seq: number) => ({ ...record(seq, `fresh/${seq > 2 ? 'b' : 'a'}`), clientId: 'new-client', schema: 'new@1' });
    const poisoned = batch([fresh(1), fresh(2)], { payloadJson: (r) => (r.seq === 2 ? deep : JSON.stringify(r.payload)) });
    await expect(store.write(poisoned)).rejects.toBeInstanceOf(RecordFault);
    // The rolled-back transaction had given ids to topic fresh/a, new-client and new@1: those must be forgotten.
    await store.write(batch([fresh(1)]));
    await store.write(batch([fresh(3)]));
    expect((await store.query({})).map((r) => [r.seq, r.topic, r.clientId, r.schema])).toEqual([
      [1, 'fresh/a', 'new-client', 'new@1'],
      [3, 'fresh/b', 'new-client', 'new@1'],
    ]);
    await store.close();
  });

  it('starts its worker thread again after it died (out of memory on a batch too large for its heap): the next writes succeed', async () => {
    const store = await openStore('sqlite', join(dir(), 'store.db'));
    await store.write(batch([record(1)]));
    // 48 readings of 2 MB: far past the worker's 64 MB heap once decoded.
    const huge = Array.from({ length: 48 }, (_, i) => ({ ...record(i + 2), payload: { pad: randomBytes(1_500_000).toString('base64') } }));
    await expect(store.write(batch(huge, { perChunk: 1 }))).rejects.toThrow(/worker exited|out of memory/i);
    await store.write(batch([record(50)]));
    expect((await store.query({})).map((r) => r.seq)).toEqual([1, 50]);
    expect(store.lastSeq()).toBe(50);
    await store.close();
  }, 60_000);

  it('moves a store of the JSONB layout (a row per reading) to blocks of JSON text, keeping every reading', async () => {
    const path = join(dir(), 'store.db');
    const old = new Database(path);
    old.exec(`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE topics (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
      CREATE TABLE clients (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
      CREATE TABLE schemas (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
      CREATE TABLE reading (seq INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL REFERENCES topics (id), received_at INTEGER NOT NULL,
        device_time INTEGER, clock_synced INTEGER NOT NULL, client_ref INTEGER NOT NULL REFERENCES clients (id),
        schema_id INTEGER REFERENCES schemas (id), qos INTEGER NOT NULL, encoding TEXT, payload BLOB NOT NULL);
      INSERT INTO meta VALUES ('agent_id', 'pi'); INSERT INTO topics VALUES (1, 'old/t'); INSERT INTO clients VALUES (1, 'c');
      INSERT INTO reading VALUES (1, 1, ${T0}, NULL, 1, 1, NULL, 1, NULL, jsonb('{"t":1.5}'));
      INSERT INTO reading VALUES (2, 1, ${T0}, NULL, 1, 1, NULL, 1, 'base64', 'AAE=');`);
    old.close();
    const store = await openStore('sqlite', path);
    await store.write(batch([record(3, 'old/t')]));
    expect((await store.query({})).map((r) => r.payload)).toEqual([{ t: 1.5 }, 'AAE=', record(3).payload]);
    await store.close();
    const db = new Database(path, { readonly: true });
    defineSqlarUncompress(db);
    expect(db.prepare("SELECT typeof(payload) AS type, json_extract(payload, '$.t') AS t FROM readings WHERE seq = 1").get()).toEqual({
      type: 'text',
      t: 1.5,
    });
    expect(db.prepare('SELECT seq, encoding, payload FROM readings WHERE seq = 2').get()).toEqual({
      seq: 2,
      encoding: 'base64',
      payload: 'AAE=',
    });
    expect(db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'reading'").get()).toEqual({ n: 0 });
    db.close();
  });
});

describe('files store names', () => {
  const hostile = [
    '..',
    '.',
    'a/../../b',
    '../x',
    '.state.json',
    'a/'.repeat(1000) + 'z',
    'x'.repeat(65536),
    'nul\u0000byte',
    '100%/%2F',
    'größe/温度/🌡',
    'a/b',
    'a%2Fb',
    '/',
    '//',
  ];

  it('keeps hostile topics inside its folder, one folder each, each read back by its own topic', async () => {
    const root = dir();
    const storeDir = join(root, 'store');
    const store = new FilesStore({ dir: storeDir });
    await store.write(batch(hostile.map((t, i) => record(i + 1, t))));
    expect(readdirSync(root)).toEqual(['store']); // nothing written beside the store
    const folders = readdirSync(storeDir).filter((f) => !f.startsWith('.'));
    expect(folders).toHaveLength(hostile.length);
    for (const f of folders) {
      expect(f.length).toBeLessThanOrEqual(200);
      expect(relative(storeDir, join(storeDir, f))).toBe(f);
    }
    for (const [i, topic] of hostile.entries()) {
      const rows = await store.query({ topic });
      expect(rows.map((r) => [r.seq, r.topic])).toEqual([[i + 1, topic]]);
    }
    // Long topics that share their first 200 bytes still get folders of their own.
    expect(topicFolder('x'.repeat(300) + 'a')).not.toBe(topicFolder('x'.repeat(300) + 'b'));
    expect(JSON.parse(readFileSync(join(storeDir, '.state.json'), 'utf8'))).toEqual({ lastSeq: hostile.length });
    await store.close();
  });

  it('writes no record twice when a batch fails part-way and is written again', async () => {
    const storeDir = join(dir(), 'store');
    const store = new FilesStore({ dir: storeDir, now: () => T0 });
    // The hour file of topic b cannot be opened (a folder stands in its place): a failure of the moment.
    const blocked = join(storeDir, topicFolder('b'), '2026-11-30T10.jsonl');
    mkdirSync(blocked, { recursive: true });
    const records = [record(1, 'a'), record(2, 'b'), record(3, 'c'), record(4, 'a')];
    await expect(store.write(batch(records))).rejects.toMatchObject({ code: 'EISDIR' });
    await expect(store.write(batch(records))).rejects.toMatchObject({ code: 'EISDIR' });
    rmSync(blocked, { recursive: true });
    await store.write(batch(records));
    await store.write(batch(records)); // and once more, whole
    expect((await store.query({})).map((r) => r.seq)).toEqual([1, 2, 3, 4]);
    const lines = readFileSync(join(storeDir, 'a', '2026-11-30T10.jsonl'), 'utf8')
      .trimEnd()
      .split('\n');
    expect(lines.map((l) => JSON.parse(l).seq)).toEqual([1, 4]);
    await store.close();
  });

  it('after a crash between the files and the state file, a reopened store writes only what is missing', async () => {
    const storeDir = join(dir(), 'store');
    let store = new FilesStore({ dir: storeDir, now: () => T0 });
    await store.write(batch([record(1, 'a'), record(2, 'b')]));
    const blocked = join(storeDir, topicFolder('d'), '2026-11-30T10.jsonl');
    mkdirSync(blocked, { recursive: true });
    // 3 (a) and 5 (c) are written, 4 (d) is not: the state file still says 2.
    await expect(store.write(batch([record(3, 'a'), record(4, 'd'), record(5, 'c')]))).rejects.toMatchObject({ code: 'EISDIR' });
    await store.close();
    rmSync(blocked, { recursive: true });
    store = new FilesStore({ dir: storeDir, now: () => T0 });
    expect(existsSync(join(storeDir, 'c', '2026-11-30T10.jsonl')) || existsSync(join(storeDir, 'a', '2026-11-30T10.jsonl'))).toBe(true);
    await store.write(batch([record(3, 'a'), record(4, 'd'), record(5, 'c')]));
    expect((await store.query({})).map((r) => r.seq)).toEqual([1, 2, 3, 4, 5]);
    await store.close();
  });
});

describe('the database thread from sources', () => {
  it('runs a bundle of the sources under test, never an older build in dist/', () => {
    const script = fileURLToPath(workerScript('db-host.js'));
    expect(relative(process.cwd(), script)).toMatch(/^node_modules\/\.cache\/edge-agent-workers\/db-host-[0-9a-f]{16}\.mjs$/);
    // The same sources give the same bundle; it holds the thread's own code, not a stub.
    expect(fileURLToPath(workerScript('db-host.js'))).toBe(script);
    expect(readFileSync(script, 'utf8')).toMatch(/openStoreService/);
  });
});
