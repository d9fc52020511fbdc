// Start-up's file pages handed back to the kernel (agent/lib/page-out.ts): only read-only mappings of
// files are touched, the agent's file-backed RSS falls, and it goes on working.
import { readFileSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ClassicLevel } from 'classic-level';
import { exposedGc } from '../agent/consume/db/db-thread.js';
import { fileMappings, logTables, pageOutFilePages, trimMallocHeap } from '../agent/lib/page-out.js';
import { cleanup, spawnAgent, tempDir, writeConfig } from './helpers/agent.js';
import { connect } from './helpers/mqtt.js';

/** Resident kB of this process's file mappings whose path `only` accepts (/proc/self/smaps). */
function residentKb(only: (path: string) => boolean): number {
  let kb = 0;
  let counted = false;
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head) counted = head[1].startsWith('/') && only(head[1]);
    else if (counted && line.startsWith('Rss:')) kb += Number(/\d+/.exec(line)![0]);
  }
  return kb;
}

describe('start-up pages handed back', () => {
  it('takes read-only mappings of files only: never written data, anonymous memory or the kernel’s', () => {
    const maps = [
      '00400000-00e38000 r--p 00000000 fe:00 2179478                            /usr/bin/edge-agent',
      '00e3c000-03401000 r-xp 00a3c000 fe:00 2179478                            /usr/bin/edge-agent',
      '06b1c000-06b45000 rw-p 0671b000 fe:00 2179478                            /usr/bin/edge-agent',
      '06b45000-06b60000 rw-p 00000000 00:00 0',
      '7f0000000000-7f0000001000 r--s 00000000 fe:00 99                         /var/lib/edge-agent/log/000012.ldb',
      '7ffd1000-7ffd3000 r-xp 00000000 00:00 0                                  [vdso]',
      '7ffe0000-7fff0000 rw-p 00000000 00:00 0                                  [stack]',
    ].join('\n');
    expect(fileMappings(maps)).toEqual([
      { start: 0x400000n, end: 0xe38000n, path: '/usr/bin/edge-agent' },
      { start: 0xe3c000n, end: 0x3401000n, path: '/usr/bin/edge-agent' },
      { start: 0x7f0000000000n, end: 0x7f0000001000n, path: '/var/lib/edge-agent/log/000012.ldb' },
    ]);
  });

  it("the log's tables: LevelDB's table files in the log's directory, nothing else", () => {
    const only = logTables('/var/lib/edge-agent/log');
    expect(only('/var/lib/edge-agent/log/000012.ldb')).toBe(true);
    expect(only('/var/lib/edge-agent/log/MANIFEST-000002')).toBe(false);
    expect(only('/var/lib/edge-agent/log2/000012.ldb')).toBe(false);
    expect(only('/usr/bin/edge-agent')).toBe(false);
  });

  it("hands back the pages LevelDB's reads left mapped, only theirs, and the data reads the same after", async () => {
    const dir = tempDir();
    const db = new ClassicLevel<string, Buffer>(join(dir, 'log'), { valueEncoding: 'buffer' });
    try {
      const value = (i: number) => randomBytes(64 * 1024).fill(i % 251, 0, 1);
      for (let i = 0; i < 64; i++) await db.put(String(i).padStart(4, '0'), value(i));
      await db.compactRange('0000', '9999'); // into table files, which LevelDB maps to read
      for (let i = 0; i < 64; i++) await db.get(String(i).padStart(4, '0'));
      const tables = () => residentKb((path) => path.endsWith('.ldb'));
      const others = () => residentKb((path) => !path.endsWith('.ldb'));
      const [mappedBefore, othersBefore] = [tables(), others()];
      expect(mappedBefore).toBeGreaterThan(1024); // the reads left MBs of the tables resident
      const r = pageOutFilePages(logTables(realpathSync(join(dir, 'log'))))!;
      expect(r.failed).toBe(0);
      expect(r.mappings).toBeGreaterThan(0);
      expect(tables()).toBeLessThan(mappedBefore / 4);
      expect(others()).toBeGreaterThan(othersBefore / 2); // the rest of the process's files stayed
      expect((await db.get('0042'))![0]).toBe(42);
    } finally {
      await db.close();
      cleanup(dir);
    }
  });

  it("hands back malloc's free pages below a chunk still in use (glibc's malloc_trim), which free() alone keeps", async () => {
    const gc = exposedGc();
    // 40 MB of 4 kB buffers (malloc's heap, under its mmap threshold), each followed by a small one kept:
    // once the big ones are freed, the heap is holes between chunks in use, and its top is in use.
    let freed: Buffer[] = [];
    const kept: Buffer[] = [];
    for (let i = 0; i < 10_000; i++) {
      freed.push(Buffer.allocUnsafeSlow(4096).fill(1));
      kept.push(Buffer.allocUnsafeSlow(64).fill(2));
    }
    freed = [];
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 100)); // V8 frees array buffers' memory after its sweep
    }
    // RssAnon read just before and after the trim alone: what it gave back, free() had kept resident.
    const r = trimMallocHeap()!;
    expect(r.before - r.after).toBeGreaterThan(20 * 1024);
    expect(kept.every((b) => b[0] === 2 && b[63] === 2)).toBe(true); // what is in use is untouched
  });

  it('the addon pages out what it is given and says why it could not (an errno), and refuses bad arguments', () => {
    const addon = createRequire(import.meta.url)('../build/Release/page_out.node') as { pageOut(a: unknown, b: unknown): number };
    const [ok] = fileMappings(readFileSync('/proc/self/maps', 'utf8'));
    expect(addon.pageOut(ok.start, ok.end)).toBe(0);
    expect(addon.pageOut(1n, 2n)).toBe(22); // EINVAL: not page-aligned
    expect(() => addon.pageOut(1, 2)).toThrow(/two bigints/);
  });

  // Run by this machine's Node, whose pages the test runner's processes share (those stay): the drop
  // is small here; the single executable's own test (packaging) asks for more than half.
  it('a second after ready (agent.pageOutAfter: 1s; 5s by default) the agent hands back file pages and still takes readings; off, it keeps them', async () => {
    const dir = tempDir();
    const dirs = [dir];
    try {
      const off = tempDir();
      dirs.push(off);
      const kept = await spawnAgent(['--config', writeConfig(off)], {
        EDGE_AGENT_LOG__LEVEL: 'info',
        EDGE_AGENT_AGENT__PAGE_OUT_AFTER: 'off',
      });
      const agent = await spawnAgent(['--config', writeConfig(dir)], {
        EDGE_AGENT_LOG__LEVEL: 'info',
        EDGE_AGENT_AGENT__PAGE_OUT_AFTER: '1s',
      });
      const line = await new Promise<{ fileRssKb: { before: number; after: number }; failed: number }>((resolve, reject) => {
        const look = setInterval(() => {
          const found = agent.lines.find((l) => l.includes('start-up pages handed back'));
          if (found) {
            clearInterval(look);
            resolve(JSON.parse(found));
          }
        }, 200);
        setTimeout(() => (clearInterval(look), reject(new Error('no page-out line in 25 s'))), 25_000);
      });
      expect(line.failed).toBe(0);
      // Node 20's pages are shared with the test runner's processes, which keep them: here there may be
      // nothing to hand back (the single executable's test asks for more than half).
      expect(line.fileRssKb.after).toBeLessThanOrEqual(line.fileRssKb.before);
      const client = await connect(`mqtt://${agent.listeners.mqtt}`);
      await client.publishAsync('paged/out', JSON.stringify({ t: 1 }), { qos: 1 }); // PUBACK: on disk
      await client.endAsync();
      agent.proc.kill('SIGTERM');
      expect(await agent.exited).toBe(0);
      // off: started before the other, it has said nothing of pages in the same time.
      expect(kept.lines.filter((l) => l.includes('start-up pages handed back'))).toEqual([]);
      expect(kept.lines.some((l) => l.includes('"ready"'))).toBe(true);
    } finally {
      dirs.forEach(cleanup);
    }
  }, 60_000);
});
