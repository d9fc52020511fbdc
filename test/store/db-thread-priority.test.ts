import { readdirSync, readFileSync } from 'node:fs';
import { getPriority } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DB_THREAD_NICE } from '../../agent/consume/db/db-thread.js';
import { openStore } from '../../agent/consume/store/index.js';
import { cleanup, tempDir } from '../helpers/agent.js';
import { batch, record } from '../helpers/records.js';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach(cleanup));

/** Each thread of this process and its nice (/proc/self/task/<tid>/stat, field 19). */
function threadNices(): Map<string, number> {
  const nices = new Map<string, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      nices.set(tid, Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]));
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return nices;
}

describe("the database thread's priority", () => {
  it('is DB_THREAD_NICE nicer than the rest of the agent, which keeps its own', async () => {
    const base = getPriority(0);
    const before = threadNices();
    const dir = tempDir();
    dirs.push(dir);
    const store = await openStore('sqlite', join(dir, 'store.db'));
    try {
      await store.write(batch([record(1)])); // the thread answers: it is running
      const after = threadNices();
      const born = [...after].filter(([tid]) => !before.has(tid));
      expect(born.filter(([, nice]) => nice === Math.min(19, base + DB_THREAD_NICE))).toHaveLength(1);
      // Per thread, not the process's: this thread and every thread there before kept their nice.
      expect(getPriority(0)).toBe(base);
      for (const [tid, nice] of before) if (after.has(tid)) expect(after.get(tid), `thread ${tid}`).toBe(nice);
    } finally {
      await store.close();
    }
  });
});
