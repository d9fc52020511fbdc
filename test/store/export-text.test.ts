import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore, type LocalStore } from '../../agent/consume/store/index.js';
import { exportText } from '../../agent/serve/export/index.js';
import { cleanup, tempDir } from '../helpers/agent.js';
import { batch, record } from '../helpers/records.js';

const all = async (pieces: AsyncGenerator<string>) => {
  const out: string[] = [];
  for await (const p of pieces) out.push(p);
  return out;
};

describe('exportText', () => {
  let dir: string;
  let store: LocalStore;
  afterEach(async () => {
    await store.close();
    cleanup(dir);
  });

  /** 2,500 readings; the first page's reading 900 alone has the field `late`. */
  async function seeded(): Promise<LocalStore> {
    dir = tempDir();
    store = await openStore('sqlite', join(dir, 'store.db'));
    const records = Array.from({ length: 2500 }, (_, i) => record(i + 1));
    records[899] = { ...records[899], payload: { ...(records[899].payload as object), late: 'yes' } };
    await store.write(batch(records));
    return store;
  }

  it('writes each page in pieces small enough to die young, the same text as whole pages', async () => {
    await seeded();
    const json = await all(exportText(store, { query: {}, format: 'json' }));
    expect(json.length).toBeGreaterThan(2500 / 200); // pieces, not pages
    expect(Math.max(...json.map((p) => p.length))).toBeLessThan(128 * 1024);
    const parsed = JSON.parse(json.join('')) as { seq: number }[];
    expect(parsed.map((r) => r.seq)).toEqual(Array.from({ length: 2500 }, (_, i) => i + 1));

    const jsonl = (await all(exportText(store, { query: {}, format: 'jsonl' }))).join('');
    expect(
      jsonl
        .trimEnd()
        .split('\n')
        .map((l) => (JSON.parse(l) as { seq: number }).seq),
    ).toEqual(parsed.map((r) => r.seq));
  });

  it('CSV: the columns come from the whole first page, though it is written in pieces; the head once', async () => {
    await seeded();
    const csv = (await all(exportText(store, { query: {}, format: 'csv' }))).join('');
    const lines = csv.trimEnd().split('\n');
    expect(lines).toHaveLength(2501);
    const head = lines[0].split(',');
    expect(head).toContain('late'); // reading 900 is past the first piece (200), within the first page (1,000)
    expect(lines.filter((l) => l.startsWith('seq,'))).toHaveLength(1);
    const late = lines[900].split(',');
    expect(late[head.indexOf('late')]).toBe('yes');
    expect(late[head.indexOf('_extra')]).toBe('');
  });
});

describe('exportText: the store renders the text in its thread', () => {
  let dir: string;
  let store: LocalStore;
  afterEach(async () => {
    await store.close();
    cleanup(dir);
  });

  it('the same text as readings rendered here, for every format, with and without fields, both orders', async () => {
    dir = tempDir();
    store = await openStore('sqlite', join(dir, 'store.db'));
    const records = Array.from({ length: 2300 }, (_, i) => record(i + 1, `sensors/${i % 3}/env`));
    records[1500] = { ...records[1500], payload: { ...(records[1500].payload as object), later: { deep: true } } };
    records[10] = { ...records[10], deviceTime: records[10].receivedAt - 5, clockCorrectionMs: 12 };
    await store.write(batch(records));
    expect(store.text).toBeDefined(); // SQLite renders in its thread
    const here = { query: store.query.bind(store) }; // no text(): rendered in this thread
    for (const format of ['csv', 'json', 'jsonl'] as const)
      for (const fields of [undefined, ['t', 'later.deep']])
        for (const order of ['asc', 'desc'] as const) {
          const opts = { query: { order }, format, ...(fields ? { fields } : {}) };
          const theirs = (await all(exportText(store, opts))).join('');
          expect(theirs.length).toBeGreaterThan(2300 * 20);
          expect(theirs, `${format} ${fields} ${order}`).toBe((await all(exportText(here, opts))).join(''));
        }
  });

  it('a piece ends at 64 k characters as well as at 200 readings', async () => {
    dir = tempDir();
    store = await openStore('sqlite', join(dir, 'store.db'));
    const big = 'x'.repeat(5000);
    await store.write(batch(Array.from({ length: 300 }, (_, i) => ({ ...record(i + 1), payload: { big, i } }))));
    const pieces = await all(exportText(store, { query: {}, format: 'jsonl' }));
    expect(pieces.length).toBeGreaterThan(300 / 13); // about 13 readings of 5 kB each
    expect(Math.max(...pieces.map((p) => p.length))).toBeLessThan(64 * 1024 + 6000);
    expect(pieces.join('').trimEnd().split('\n')).toHaveLength(300);
  });
});
