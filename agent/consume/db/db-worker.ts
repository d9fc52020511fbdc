// A database held open in the database thread (the SQLite store, the rollups): its inserts and
// fsyncs must not hold up the event loop that acknowledges readings. Requests are answered in order.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { RecordFault } from '../../lib/faults.js';
import type { HostMessage } from './db-host.js';
import type { Reply } from './db-thread.js';
import type { RollupWorkerData } from '../rollups/worker.js';
import { assetPath, isSea } from '../../lib/sea.js';
import type { StoreWorkerData } from '../store/sqlite-worker.js';

/**
 * What SQLite refuses for a row's content: retrying cannot help. Anything else (SQLITE_FULL,
 * SQLITE_IOERR_*, SQLITE_BUSY...) is of the moment. SyntaxError: a raw payload that is not base64 text.
 */
const RECORD_FAULTS = /^(SQLITE_CONSTRAINT_(CHECK|NOTNULL)|SQLITE_TOOBIG|SQLITE_MISMATCH|SyntaxError)$/;

function toError(reply: Reply): Error {
  return RECORD_FAULTS.test(reply.code ?? '')
    ? new RecordFault(`${reply.code}: ${reply.error}`)
    : Object.assign(new Error(reply.error), { code: reply.code });
}

/**
 * The worker script beside this module; in a bundle (scripts/bundle.ts, CommonJS), the worker's
 * bundle in workers/ beside it; in the single executable, that bundle as an asset.
 */
export function workerScript(relative: string): URL {
  const bundle = `workers/${relative.replace(/\.js$/, '.cjs')}`;
  if (isSea()) return pathToFileURL(assetPath(bundle));
  if (import.meta.url.endsWith('.ts')) return bundled.get(relative) ?? bundled.set(relative, fromSources(relative)).get(relative)!;
  return new URL(import.meta.url.endsWith('.cjs') ? `./${bundle}` : `./${relative}`, import.meta.url);
}

/** Bundles made in this process: the sources do not change while it runs, and a test starts many threads. */
const bundled = new Map<string, URL>();

/**
 * Running from TypeScript sources (the tests): the worker is bundled from the same sources, never
 * taken from an older build. Named by its content, in node_modules/.cache so its packages resolve.
 */
function fromSources(relative: string): URL {
  const entry = fileURLToPath(new URL(`./${relative.replace(/\.js$/, '.ts')}`, import.meta.url));
  // esbuild's command, run and ended here: its API would leave a service process behind holding
  // whatever files this process has open (LevelDB's are not close-on-exec), deleted ones too.
  const cli = createRequire(import.meta.url).resolve('esbuild/bin/esbuild');
  const code = execFileSync(cli, [entry, '--bundle', '--platform=node', '--format=esm', '--packages=external', '--log-level=warning'], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  const dir = fileURLToPath(new URL('../../../node_modules/.cache/edge-agent-workers', import.meta.url));
  const path = join(dir, `${basename(relative, '.js')}-${createHash('sha256').update(code).digest('hex').slice(0, 16)}.mjs`);
  if (!existsSync(path)) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(`${path}.${process.pid}`, code);
    renameSync(`${path}.${process.pid}`, path);
  }
  return pathToFileURL(path);
}

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };

/**
 * The database thread (db-host.ts): every database a DbWorker opens lives in it, each on its own
 * port. It ends once the last of them closed, or with its first fatal error (out of memory, say):
 * then every database in it fails its calls, and the next DbWorker starts a new thread.
 */
class DbThread {
  readonly worker: Worker;
  /** Set once it ended or was told to: no new database is opened in it. */
  ended = false;
  private open = 0;

  constructor() {
    // Plain Node, whatever flags or loaders the host process has; a small heap: it holds a batch at a time.
    this.worker = new Worker(workerScript('db-host.js'), {
      execArgv: [],
      resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 64 },
    });
    this.worker.setMaxListeners(0); // two per database in it
    this.worker.once('exit', () => (this.ended = true));
  }

  connect(message: Omit<Extract<HostMessage, { op: 'open' }>, 'port'>): MessagePort {
    const { port1, port2 } = new MessageChannel();
    this.open++;
    this.worker.postMessage({ ...message, port: port2 } as HostMessage, [port2]);
    return port1;
  }

  release(): void {
    if (--this.open > 0 || this.ended) return;
    this.ended = true;
    this.worker.postMessage({ op: 'exit' } satisfies HostMessage);
  }
}

let thread: DbThread | undefined;
const dbThread = () => (thread && !thread.ended ? thread : (thread = new DbThread()));

/**
 * One database held open in the database thread. It fails with the thread's first fatal error.
 * The thread answers id 0 once it is open (its result: the highest seq it holds), then each request by id.
 */
export class DbWorker<Request extends { op: string }> {
  private readonly thread: DbThread;
  private readonly port: MessagePort;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Set once the database is closed or its thread gone: every call after fails with it. */
  private failure: Error | undefined;
  private closed!: () => void;
  private released = false;
  readonly exited: Promise<void>;
  readonly ready: Promise<number>;
  /** What its database has written, as of its last answer. */
  written = 0;
  private readonly onError = (err: Error) => this.fail(err);
  private readonly onExit = (code: number) => this.fail(new Error(`database worker exited (${code})`));

  constructor(service: 'store', data: StoreWorkerData);
  constructor(service: 'rollups', data: RollupWorkerData);
  constructor(service: 'store' | 'rollups', data: StoreWorkerData | RollupWorkerData) {
    this.thread = dbThread();
    this.port = this.thread.connect({ op: 'open', service, data } as Omit<Extract<HostMessage, { op: 'open' }>, 'port'>);
    this.exited = new Promise<void>((resolve) => (this.closed = resolve));
    this.ready = new Promise<number>((resolve, reject) => this.pending.set(0, { resolve: (v) => resolve(v as number), reject }));
    this.ready.catch(() => {}); // the opener awaits it
    this.port.on('message', (reply: Reply) => {
      const p = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      if (reply.written !== undefined) this.written = reply.written;
      if (reply.error !== undefined) p?.reject(toError(reply));
      else p?.resolve(reply.result);
      if (reply.id === 0 && reply.error !== undefined) this.end(new Error(reply.error)); // it could not open
    });
    this.thread.worker.on('error', this.onError);
    this.thread.worker.on('exit', this.onExit);
  }

  get alive(): boolean {
    return this.failure === undefined;
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
    this.end(err);
  }

  /** This database is done with its thread. */
  private end(err: Error): void {
    if (this.released) return;
    this.released = true;
    this.failure ??= err;
    this.thread.worker.off('error', this.onError);
    this.thread.worker.off('exit', this.onExit);
    this.port.close();
    this.thread.release();
    this.closed();
  }

  call(request: Request, transfer: ArrayBuffer[] = []): Promise<unknown> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.port.postMessage({ id, ...request }, transfer);
    });
  }

  /** Ask it to close, and wait until it is. */
  async close(): Promise<void> {
    if (this.alive) await this.call({ op: 'close' } as Request).finally(() => this.end(new Error('database closed')));
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

  private constructor(
    private readonly start: () => DbWorker<Request>,
    private readonly opened: (ready: number) => void,
  ) {
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
