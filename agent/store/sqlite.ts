// SQLite store, run in a worker thread so that its inserts and fsyncs never stall ingest.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { RecordFault } from '../buffer/faults.js';
import type { LogRecord } from '../buffer/record.js';
import type { Reply, Request } from './sqlite-worker.js';
import type { LocalStore } from './types.js';

/** The compiled worker; when running from TypeScript sources (the tests), the one in dist/. */
function workerScript(): URL {
  const beside = new URL('./sqlite-worker.js', import.meta.url);
  return existsSync(fileURLToPath(beside)) ? beside : new URL('../../dist/agent/store/sqlite-worker.js', import.meta.url);
}

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };

/**
 * What SQLite refuses for a row's content: retrying cannot help. Anything else (SQLITE_FULL,
 * SQLITE_IOERR_*, SQLITE_BUSY...) is of the moment. SyntaxError: a raw payload that is not base64 text.
 */
const RECORD_FAULTS = /^(SQLITE_CONSTRAINT_(CHECK|NOTNULL)|SQLITE_TOOBIG|SQLITE_MISMATCH|SyntaxError)$/;

function toError(reply: Reply): Error {
  return RECORD_FAULTS.test(reply.code ?? '') ? new RecordFault(`${reply.code}: ${reply.error}`) : Object.assign(new Error(reply.error), { code: reply.code });
}
type Body = Request extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

export async function openSqliteStore(path: string): Promise<LocalStore> {
  // Plain Node, whatever flags or loaders the host process has; a small heap: it holds one batch at a time.
  const worker = new Worker(workerScript(), { workerData: { path }, execArgv: [], resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 64 } });
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  const pending = new Map<number, Pending>();
  let nextId = 1;
  let failure: Error | undefined;
  const ready = new Promise<number>((resolve, reject) => pending.set(0, { resolve: (v) => resolve(v as number), reject }));
  worker.on('message', (reply: Reply) => {
    const p = pending.get(reply.id);
    pending.delete(reply.id);
    if (reply.error !== undefined) p?.reject(toError(reply));
    else p?.resolve(reply.result);
  });
  const fail = (err: Error) => {
    failure ??= err;
    for (const p of pending.values()) p.reject(failure);
    pending.clear();
  };
  worker.on('error', fail);
  worker.on('exit', (code) => fail(new Error(`sqlite store worker exited (${code})`)));
  const call = (body: Body, transfer: ArrayBuffer[] = []): Promise<unknown> => {
    if (failure) return Promise.reject(failure);
    const id = nextId++;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      worker.postMessage({ id, ...body }, transfer);
    });
  };
  let last = await ready;

  return {
    kind: 'sqlite',
    // The worker takes requests in order: the next batch waits there, not for this thread's round trip.
    writesInFlight: 2,
    async write(batch) {
      // Copies in buffers of their own (a Buffer's slice() is a view), handed over (not cloned): the worker decodes them.
      const chunks = batch.chunks.map((c) => new Uint8Array(c));
      await call({ op: 'write', agentId: batch.agentId, chunks, firstSeq: batch.firstSeq, lastSeq: batch.lastSeq, key: batch.key }, chunks.map((c) => c.buffer as ArrayBuffer));
      last = Math.max(last, batch.lastSeq);
    },
    query: async (query) => (await call({ op: 'query', query })) as LogRecord[],
    lastSeq: () => last,
    async close() {
      await call({ op: 'close' });
      await exited;
    },
  };
}
