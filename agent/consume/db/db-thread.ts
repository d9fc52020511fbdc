// The database thread's side of a DbWorker (db-worker.ts): one service (the store, the rollups) on
// its own MessagePort. Open the database and answer id 0 with the highest seq it holds (or why it
// could not open, and stop), then answer each request by its id.
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { MessagePort } from 'node:worker_threads';
import { writtenBytes } from '../../lib/disk-writes.js';

/** `code`: SQLite's extended result code (SQLITE_FULL, SQLITE_CONSTRAINT_CHECK...), or the JS error's name. */
export type Reply = { id: number; result?: unknown; error?: string; code?: string; written?: number };

/** A database opened in the thread: what it holds (its highest seq), and how it answers a request. */
export interface DbService<Request> {
  ready: number;
  handle(req: Request): unknown;
}

const errorReply = (id: number, err: unknown): Reply => {
  const e = err as Error & { code?: unknown };
  return { id, error: e.message, code: typeof e.code === 'string' ? e.code : e.name };
};

/**
 * The thread's write_bytes as last read. Requests run one at a time and nothing else writes from
 * this thread, so what it grew by since the end of the last request is the current request's: one
 * read of /proc per request.
 */
let seen = writtenBytes('thread') ?? 0;
function writtenSinceSeen(): number {
  const now = writtenBytes('thread') ?? seen;
  const grown = now - seen;
  seen = now;
  return grown;
}

/**
 * The data path (broker, ingest, the log, PUBACKs) runs in the main thread; what runs here (the
 * store's and the rollups' writes, every query and export) can wait a little. When the cores are
 * all busy, this thread gets a tenth of the main thread's share of one (nice 10 against 0), so a
 * burst of queries does not hold PUBACKs back: `npm run bench -- abuse`, PUBACK p99 54.3 -> 46.9 ms,
 * store lag unchanged. An idle core is still this thread's at once: nice only counts when they compete.
 */
export const DB_THREAD_NICE = 10;

/** Bytes in the old generation (large objects included). */
const oldBytes = () =>
  getHeapSpaceStatistics()
    .filter((s) => s.space_name === 'old_space' || s.space_name === 'large_object_space')
    .reduce((n, s) => n + s.space_used_size, 0);

/** How far the old generation may grow past what the thread's last collection kept. */
export const OLD_GROWTH = 1024 * 1024;

/** V8's gc() for this thread, without exposing it to the code the thread runs. */
export function exposedGc(): () => void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  setFlagsFromString('--no-expose-gc');
  return gc;
}

/**
 * V8 lets an old generation grow at least 8 MB past what its last full collection kept before it
 * marks again, whatever the heap's size: this thread keeps about 5 MB, and an export's minute of
 * reads (a page's readings live across a scavenge or two, then die old) held it at 15 MB. The
 * thread collects itself instead once its old generation has grown OLD_GROWTH, between two
 * requests (a few ms, while nothing waits but the next request): 9.5 MB under the same export
 * (10.5 with 2 MB; 1 MB costs the thread about 1.5 % of its time in an export).
 * The returned check says whether it collected.
 */
export function collector(used = oldBytes, gc = exposedGc()): () => boolean {
  let kept = used();
  return () => {
    if (used() < kept + OLD_GROWTH) return false;
    gc();
    kept = used();
    return true;
  };
}

let collect: (() => boolean) | undefined;

export function serveDb<Request extends { op: string }>(port: MessagePort, open: () => DbService<Request>): void {
  // The thread's writes while this service works are its database's: SQLite writes synchronously.
  let written = 0;
  const counted = <T>(work: () => T): T => {
    try {
      return work();
    } finally {
      written += writtenSinceSeen();
    }
  };
  let service: DbService<Request>;
  try {
    service = counted(open);
    port.postMessage({ id: 0, result: service.ready, written } satisfies Reply);
  } catch (err) {
    // Opening failed (a full disk, say): say why, with SQLite's code, and stop.
    port.postMessage(errorReply(0, err));
    port.close();
    return;
  }
  port.on('message', (req: Request & { id: number }) => {
    try {
      const result = counted(() => service.handle(req));
      port.postMessage({ id: req.id, result, written } satisfies Reply);
    } catch (err) {
      port.postMessage({ ...errorReply(req.id, err), written });
    }
    if (req.op === 'close') port.close();
    (collect ??= collector())();
  });
}
