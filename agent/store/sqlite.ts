// SQLite store, run in a worker thread so that its inserts and fsyncs never stall ingest.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { RecordFault } from '../buffer/faults.js';
import type { LogRecord } from '../buffer/record.js';
import type { Reply, Request } from './sqlite-worker.js';
import type { LocalStore, PruneStep } from './types.js';

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

/** One worker thread holding the database open; it dies with its first fatal error (out of memory, say). */
class StoreWorker {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Set once the thread is gone: every call after fails with it. */
  private failure: Error | undefined;
  readonly exited: Promise<void>;
  /** Highest seq stored, once the database is open. */
  readonly ready: Promise<number>;
  /** What its thread has written, as of its last write. */
  written = 0;

  constructor(path: string, key?: Buffer) {
    // Plain Node, whatever flags or loaders the host process has; a small heap: it holds one batch at a time.
    this.worker = new Worker(workerScript(), { workerData: { path, key }, execArgv: [], resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 64 } });
    this.exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.ready = new Promise<number>((resolve, reject) => this.pending.set(0, { resolve: (v) => resolve(v as number), reject }));
    this.ready.catch(() => {}); // the opener awaits it
    this.worker.on('message', (reply: Reply) => {
      const p = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      if (reply.written !== undefined) this.written = reply.written;
      if (reply.error !== undefined) p?.reject(toError(reply));
      else p?.resolve(reply.result);
    });
    this.worker.on('error', (err) => this.fail(err));
    this.worker.on('exit', (code) => this.fail(new Error(`sqlite store worker exited (${code})`)));
  }

  get alive(): boolean {
    return this.failure === undefined;
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
  }

  call(body: Body, transfer: ArrayBuffer[] = []): Promise<unknown> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, ...body }, transfer);
    });
  }
}

/** `key`: encrypt the database (SQLCipher format) with it. */
export async function openSqliteStore(path: string, key?: Buffer): Promise<LocalStore> {
  let worker = new StoreWorker(path, key);
  let last = await worker.ready;
  /** Bytes written by workers that are gone. */
  let writtenBefore = 0;
  /** The worker, started again if its thread died: the failed call was an error of the moment, retried. */
  const live = async () => {
    if (!worker.alive) {
      writtenBefore += worker.written;
      worker = new StoreWorker(path, key);
      last = Math.max(last, await worker.ready);
    }
    return worker;
  };

  return {
    kind: 'sqlite',
    // The worker takes requests in order: the next batch waits there, not for this thread's round trip.
    writesInFlight: 2,
    async write(batch) {
      // Copies in buffers of their own (a Buffer's slice() is a view), handed over (not cloned): the worker decodes them.
      const chunks = batch.chunks.map((c) => new Uint8Array(c));
      await (await live()).call({ op: 'write', agentId: batch.agentId, chunks, firstSeq: batch.firstSeq, lastSeq: batch.lastSeq, key: batch.key }, chunks.map((c) => c.buffer as ArrayBuffer));
      last = Math.max(last, batch.lastSeq);
    },
    query: async (query) => (await (await live()).call({ op: 'query', query })) as LogRecord[],
    prune: async (rule, limit) => (await (await live()).call({ op: 'prune', rule, limit })) as PruneStep,
    lastSeq: () => last,
    writtenBytes: () => writtenBefore + worker.written,
    async close() {
      if (worker.alive) await worker.call({ op: 'close' });
      await worker.exited;
    },
  };
}
