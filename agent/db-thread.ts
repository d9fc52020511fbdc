// The worker thread's side of a DbWorker (db-worker.ts): open the database and answer id 0 with the
// highest seq it holds (or why it could not open, and end), then answer each request by its id.
import { parentPort } from 'node:worker_threads';
import type { Reply } from './db-worker.js';
import { writtenBytes } from './health/disk-writes.js';

const errorReply = (id: number, err: unknown): Reply => {
  const e = err as Error & { code?: unknown };
  return { id, error: e.message, code: typeof e.code === 'string' ? e.code : e.name };
};

export function serveDb<Request extends { op: string }>(open: () => number, handle: (req: Request) => unknown): void {
  const port = parentPort!;
  try {
    port.postMessage({ id: 0, result: open() } satisfies Reply);
  } catch (err) {
    // Opening failed (a full disk, say): say why, with SQLite's code, and end.
    port.postMessage(errorReply(0, err));
    port.close();
    return;
  }
  port.on('message', (req: Request & { id: number }) => {
    try {
      const result = handle(req);
      // This thread's writes are its database's: SQLite writes from it, synchronously.
      port.postMessage({ id: req.id, result, written: req.op === 'write' ? writtenBytes('thread') : undefined } satisfies Reply);
    } catch (err) {
      port.postMessage(errorReply(req.id, err));
    }
    if (req.op === 'close') port.close(); // nothing keeps the thread alive after this: it ends
  });
}
