// The database thread's side of a DbWorker (db-worker.ts): one service (the store, the rollups) on
// its own MessagePort. Open the database and answer id 0 with the highest seq it holds (or why it
// could not open, and stop), then answer each request by its id.
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
  });
}
