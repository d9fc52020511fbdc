// After start-up, the pages of the program's own files (Node, the bundle, the addons) that only
// starting touched are handed back to the kernel (madvise MADV_PAGEOUT): the kernel would reclaim
// them under pressure anyway, but until then they count in the agent's RSS (about 45 of the single
// executable's 63 MB of file pages). What is used again comes back from the page cache or the card.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { findUp } from './find-up.js';
import { isSea, loadNative } from './sea.js';

interface PageOutAddon {
  pageOut(start: bigint, end: bigint): number;
  trimHeap(): boolean;
}

/** The addon: an asset of the single executable, else what `npm install` built (node-gyp). */
function addon(): PageOutAddon | undefined {
  if (isSea()) return loadNative('page-out') as PageOutAddon;
  const path = findUp('build/Release/page_out.node');
  try {
    return path ? (createRequire(import.meta.url)(path) as PageOutAddon) : undefined;
  } catch {
    return undefined; // built for another Node or machine: the pages stay until the kernel wants them
  }
}

/** Read-only mappings of files: code and constants, never data the process wrote. */
export function fileMappings(maps: string): { start: bigint; end: bigint; path: string }[] {
  return maps
    .split('\n')
    .map((line) => /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \d+\s+(\/.*)$/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null && !m[3].includes('w'))
    .map((m) => ({ start: BigInt(`0x${m[1]}`), end: BigInt(`0x${m[2]}`), path: m[4] }));
}

const statusKb = (field: 'RssFile' | 'RssAnon') =>
  Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? NaN);
const rssFileKb = () => statusKb('RssFile');

export interface PagedOut {
  /** File-backed RSS before and after, kB. */
  before: number;
  after: number;
  mappings: number;
  failed: number;
}

/**
 * Hand back the file pages of read-only mappings (those of files `only` accepts); undefined where
 * the addon is not there (off Linux).
 */
export function pageOutFilePages(only: (path: string) => boolean = () => true): PagedOut | undefined {
  const native = addon();
  if (!native) return undefined;
  const before = rssFileKb();
  const mappings = fileMappings(readFileSync('/proc/self/maps', 'utf8')).filter((m) => only(m.path));
  const failed = mappings.filter(({ start, end }) => native.pageOut(start, end) !== 0).length;
  return { before, after: rssFileKb(), mappings: mappings.length, failed };
}

/**
 * LevelDB maps the log's table files to read them (its reads, and its compactions'): every page read
 * stays in RSS while the file is open, however long ago it was read, up to the size of the log. The
 * consumers read each chunk once; a page read again comes back from the page cache.
 */
export const logTables = (logDir: string) => (path: string) => path.startsWith(`${logDir}/`) && path.endsWith('.ldb');

/**
 * Hand back the free pages inside malloc's heap (glibc's malloc_trim(0)); undefined where the addon
 * is not there. The unit's MALLOC_TRIM_THRESHOLD_ gives back only the heap's top: the holes that
 * LevelDB's memtables and compactions, SQLite's pages and V8's zones leave below a chunk still in
 * use stay resident (one arena for every thread, MALLOC_ARENA_MAX=1).
 */
export function trimMallocHeap(): { before: number; after: number } | undefined {
  const native = addon();
  if (!native) return undefined;
  const before = statusKb('RssAnon');
  native.trimHeap();
  return { before, after: statusKb('RssAnon') };
}
