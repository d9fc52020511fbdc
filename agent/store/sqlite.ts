// SQLite store, run in a worker thread so that its inserts and fsyncs never stall ingest.
import { DbWorker, RestartingWorker, workerScript } from '../db-worker.js';
import type { LogRecord } from '../buffer/record.js';
import type { Request } from './sqlite-worker.js';
import type { LocalStore, PruneStep } from './types.js';

/** `key`: encrypt the database (SQLCipher format) with it; `readonly`: a reader beside the agent, changing nothing. */
export async function openSqliteStore(path: string, key?: Buffer, readonly = false): Promise<LocalStore> {
  let last = 0;
  const worker = await RestartingWorker.open<Request>(
    () => new DbWorker(workerScript('store/sqlite-worker.js'), { path, key, readonly }),
    (ready) => (last = Math.max(last, ready)),
  );
  return {
    kind: 'sqlite',
    // The worker takes requests in order: the next batch waits there, not for this thread's round trip.
    writesInFlight: 2,
    async write(batch) {
      // Copies in buffers of their own (a Buffer's slice() is a view), handed over (not cloned): the worker decodes them.
      const chunks = batch.chunks.map((c) => new Uint8Array(c));
      await worker.call({ op: 'write', agentId: batch.agentId, chunks, firstSeq: batch.firstSeq, lastSeq: batch.lastSeq, key: batch.key, clock: batch.clock }, chunks.map((c) => c.buffer as ArrayBuffer));
      last = Math.max(last, batch.lastSeq);
    },
    query: async (query) => (await worker.call({ op: 'query', query })) as LogRecord[],
    prune: async (rule, limit) => (await worker.call({ op: 'prune', rule, limit })) as PruneStep,
    remove: async (removal, limit) => (await worker.call({ op: 'remove', removal, limit })) as PruneStep,
    lastSeq: () => last,
    size: async (topics) => (await worker.call({ op: 'size', topics })) as number,
    writtenBytes: () => worker.written,
    close: () => worker.close(),
  };
}
