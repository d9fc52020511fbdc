import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore, type LocalStore } from '../../agent/consume/store/index.js';
import { exportText } from '../../agent/serve/export/index.js';
import { cleanup, tempDir } from '../helpers/agent.js';
import { batch, record } from '../helpers/records.js';

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

  const all = async (pieces: AsyncGenerator<string>) => {
    const out: string[] = [];
    for await (const p of pieces) out.push(p);
    return out;
  };

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
