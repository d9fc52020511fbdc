// A database held open in a worker thread (the SQLite store, the rollups): its inserts and fsyncs
// must not hold up the event loop that acknowledges readings. Requests are answered in order.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { RecordFault } from './buffer/faults.js';
import { assetPath, isSea } from './sea.js';

/** `code`: SQLite's extended result code (SQLITE_FULL, SQLITE_CONSTRAINT_CHECK...), or the JS error's name. */
export type Reply = { id: number; result?: unknown; error?: string; code?: string; written?: number };

/**
 * What SQLite refuses for a row's content: retrying cannot help. Anything else (SQLITE_FULL,
 * SQLITE_IOERR_*, SQLITE_BUSY...) is of the moment. SyntaxError: a raw payload that is not base64 text.
 */
const RECORD_FAULTS = /^(SQLITE_CONSTRAINT_(CHECK|NOTNULL)|SQLITE_TOOBIG|SQLITE_MISMATCH|SyntaxError)$/;

function toError(reply: Reply): Error {
  return RECORD_FAULTS.test(reply.code ?? '') ? new RecordFault(`${reply.code}: ${reply.error}`) : Object.assign(new Error(reply.error), { code: reply.code });
}

/** The compiled worker script beside this module; when running from TypeScript sources (the tests), the one in dist/; in the single executable, its bundle. */
export function workerScript(relative: string): URL {
  if (isSea()) return pathToFileURL(assetPath(`workers/${relative.replace(/\.js$/, '.cjs')}`));
  const beside = new URL(`./${relative}`, import.meta.url);
  return existsSync(fileURLToPath(beside)) ? beside : new URL(`../dist/agent/${relative}`, import.meta.url);
}

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };

/**
 * One worker thread holding a database open; it dies with its first fatal error (out of memory, say).
 * The script answers id 0 once open (its result: the highest seq it holds), then each request by id.
 */
export class DbWorker<Request extends { op: string }> {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Set once the thread is gone: every call after fails with it. */
  private failure: Error | undefined;
  readonly exited: Promise<void>;
  readonly ready: Promise<number>;
  /** What its thread has written, as of its last answer that said. */
  written = 0;

  constructor(script: URL, workerData: object) {
    // Plain Node, whatever flags or loaders the host process has; a small heap: it holds one batch at a time.
    this.worker = new Worker(script, { workerData, execArgv: [], resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 64 } });
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
    this.worker.on('exit', (code) => this.fail(new Error(`database worker exited (${code})`)));
  }

  get alive(): boolean {
    return this.failure === undefined;
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
  }

  call(request: Request, transfer: ArrayBuffer[] = []): Promise<unknown> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, ...request }, transfer);
    });
  }

  /** Ask it to close, and wait until the thread is gone. */
  async close(): Promise<void> {
    if (this.alive) await this.call({ op: 'close' } as Request);
    await this.exited;
  }
}

/**
 * A worker, started again when its thread died: the call that failed with it was an error of the
 * moment, retried by its consumer. `opened` sees each new worker's ready answer.
 */
export class RestartingWorker<Request extends { op: string }> {
  private worker: DbWorker<Request>;
  /** Bytes written by workers that are gone. */
  private writtenBefore = 0;

  private constructor(private readonly start: () => DbWorker<Request>, private readonly opened: (ready: number) => void) {
    this.worker = start();
  }

  static async open<R extends { op: string }>(start: () => DbWorker<R>, opened: (ready: number) => void): Promise<RestartingWorker<R>> {
    const w = new RestartingWorker(start, opened);
    opened(await w.worker.ready);
    return w;
  }

  async call(request: Request, transfer?: ArrayBuffer[]): Promise<unknown> {
    if (!this.worker.alive) {
      this.writtenBefore += this.worker.written;
      this.worker = this.start();
      this.opened(await this.worker.ready);
    }
    return this.worker.call(request, transfer);
  }

  get written(): number {
    return this.writtenBefore + this.worker.written;
  }

  close(): Promise<void> {
    return this.worker.close();
  }
}
