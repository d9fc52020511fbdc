// SQLite store, run in a worker thread so that its inserts and fsyncs never stall ingest.
import type { LogRecord } from '../../log/format.js';
import { DbWorker, RestartingWorker } from '../db/db-worker.js';
import { mergeFolded } from './fold.js';
import type { Request, TextSlice } from './sqlite-worker.js';
import type { Folded, FoldQuery, FoldResult, LocalStore, Position, PruneStep, StoreQuery, TextForm, TextPage } from './types.js';

/**
 * A query runs in slices of about this long in the worker; between them a write (or another reader)
 * takes its turn, so readers hold the store's writes back by at most about this much, not for the
 * length of a query.
 */
const QUERY_SLICE_MS = 100;

/**
 * Hands the worker one slice of a read when its turn comes; it rejects instead when `signal` says
 * the asker has gone (the next slice, or a write, goes now).
 */
type Slice = <T>(call: () => Promise<T>, signal?: AbortSignal) => Promise<T>;

/**
 * Reads take turns slice by slice. One asker's reads go one at a time, in order; the askers with a
 * read going take a slice each in turn. A short read waits behind one slice of each other asker's,
 * not behind their whole queue (one viewer's hundred scans do not hold up another's page), and a
 * write waits behind at most one slice (the worker takes requests in order).
 */
class Turns {
  /** Each asker's last read: the next one starts after it. */
  private readonly askers = new Map<string, Promise<unknown>>();
  /** Slices waiting for the one going to end, in turn. */
  private readonly waiting: (() => void)[] = [];
  private busy = false;

  read<T>(asker: string, work: (slice: Slice) => Promise<T>): Promise<T> {
    const go = () => work((call, signal) => this.slice(call, signal));
    const result = (this.askers.get(asker) ?? Promise.resolve()).then(go);
    const settled = result.catch(() => {});
    this.askers.set(asker, settled);
    void settled.then(() => this.askers.get(asker) === settled && this.askers.delete(asker));
    return result;
  }

  private async slice<T>(call: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.busy) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.busy = true;
    try {
      signal?.throwIfAborted();
      return await call();
    } finally {
      const next = this.waiting.shift();
      if (next)
        next(); // busy stays set: the turn passes straight on
      else this.busy = false;
    }
  }
}

type Part = { looked: number; resume?: Position };

/**
 * A read asked slice by slice until it has `limit` readings (`count` says how many a part has), the
 * store has no more, or maxScan ran out (`scannedTo`: where). `ask` gets the readings had so far.
 */
async function sliced<P extends Part>(
  slice: Slice,
  query: StoreQuery,
  signal: AbortSignal | undefined,
  ask: (q: StoreQuery, had: number) => Promise<P>,
  count: (part: P) => number,
): Promise<{ parts: P[]; scannedTo?: Position }> {
  const parts: P[] = [];
  const limit = query.limit ?? 1000;
  let had = 0;
  let after = query.after;
  let scanLeft = query.maxScan ?? Infinity;
  for (;;) {
    const maxScan = Number.isFinite(scanLeft) ? scanLeft : undefined;
    const part = await slice(() => ask({ ...query, after, limit: limit - had, maxScan }, had), signal);
    parts.push(part);
    had += count(part);
    scanLeft -= part.looked;
    if (!part.resume || had >= limit) return { parts };
    if (scanLeft <= 0) return { parts, scannedTo: part.resume };
    after = part.resume;
  }
}

async function querySliced(
  worker: RestartingWorker<Request>,
  slice: Slice,
  query: StoreQuery,
  signal?: AbortSignal,
): Promise<{ records: LogRecord[]; scannedTo?: Position }> {
  const ask = (q: StoreQuery) =>
    worker.call({ op: 'query', query: q, sliceMs: QUERY_SLICE_MS }) as Promise<Part & { records: LogRecord[] }>;
  const { parts, scannedTo } = await sliced(slice, query, signal, ask, (p) => p.records.length);
  return { records: parts.flatMap((p) => p.records), ...(scannedTo ? { scannedTo } : {}) };
}

/** As querySliced, the readings rendered as text in the worker. */
async function textSliced(
  worker: RestartingWorker<Request>,
  slice: Slice,
  query: StoreQuery,
  form: TextForm,
  before: number,
  signal?: AbortSignal,
): Promise<TextPage> {
  const ask = (q: StoreQuery, had: number) =>
    worker.call({ op: 'query', query: q, sliceMs: QUERY_SLICE_MS, text: { form, before: before + had } }) as Promise<TextSlice>;
  const { parts, scannedTo } = await sliced(slice, query, signal, ask, (p) => p.rows);
  const last = parts.reduce<Position | undefined>((at, p) => p.last ?? at, undefined);
  return {
    pieces: parts.flatMap((p) => p.pieces),
    rows: parts.reduce((n, p) => n + p.rows, 0),
    ...(last ? { last } : {}),
    ...(scannedTo ? { scannedTo } : {}),
  };
}

/** A fold asked slice by slice; each slice's buckets merged here (the readings stay in the worker). */
async function foldSliced(worker: RestartingWorker<Request>, slice: Slice, query: FoldQuery, signal?: AbortSignal): Promise<FoldResult> {
  const series: Folded = new Map();
  let after: Position | undefined;
  let folded = 0;
  for (;;) {
    const part = (await slice(
      () => worker.call({ op: 'fold', query, after, left: query.maxScan - folded, sliceMs: QUERY_SLICE_MS }),
      signal,
    )) as {
      series: Folded;
      looked: number;
      resume?: Position;
      more?: boolean;
    };
    mergeFolded(series, part.series);
    folded += part.looked;
    if (part.more || !part.resume) return { series, folded, more: part.more === true };
    after = part.resume;
  }
}

/** `key`: encrypt the database (SQLCipher format) with it; `readonly`: a reader beside the agent, changing nothing. */
export async function openSqliteStore(path: string, key?: Buffer, readonly = false): Promise<LocalStore> {
  let last = 0;
  const reads = new Turns();
  const worker = await RestartingWorker.open<Request>(
    () => new DbWorker('store', { path, key, readonly }),
    (ready) => (last = Math.max(last, ready)),
  );
  return {
    kind: 'sqlite',
    // The worker takes requests in order: the next batch waits there, not for this thread's round trip.
    writesInFlight: 2,
    async write(batch) {
      // Copies in buffers of their own (a Buffer's slice() is a view), handed over (not cloned): the worker decodes them.
      const chunks = batch.chunks.map((c) => new Uint8Array(c));
      await worker.call(
        {
          op: 'write',
          agentId: batch.agentId,
          chunks,
          firstSeq: batch.firstSeq,
          lastSeq: batch.lastSeq,
          key: batch.key,
          clock: batch.clock,
        },
        chunks.map((c) => c.buffer as ArrayBuffer),
      );
      last = Math.max(last, batch.lastSeq);
    },
    query: async (query, asker) =>
      (await reads.read(asker?.name ?? '', (slice) => querySliced(worker, slice, query, asker?.signal))).records,
    page: (query, asker) => reads.read(asker?.name ?? '', (slice) => querySliced(worker, slice, query, asker?.signal)),
    text: (query, form, before, asker) =>
      reads.read(asker?.name ?? '', (slice) => textSliced(worker, slice, query, form, before, asker?.signal)),
    fold: (query, asker) => reads.read(asker?.name ?? '', (slice) => foldSliced(worker, slice, query, asker?.signal)),
    prune: async (rule, limit) => (await worker.call({ op: 'prune', rule, limit })) as PruneStep,
    remove: async (removal, limit) => (await worker.call({ op: 'remove', removal, limit })) as PruneStep,
    lastSeq: () => last,
    size: (topics) => reads.read('', async (slice) => (await slice(() => worker.call({ op: 'size', topics }))) as number),
    writtenBytes: () => worker.written,
    close: () => worker.close(),
  };
}
