// SQLite store, run in a worker thread so that its inserts and fsyncs never stall ingest.
import type { LogRecord } from '../../log/format.js';
import { DbWorker, RestartingWorker } from '../db/db-worker.js';
import { mergeFolded } from './fold.js';
import type { Request } from './sqlite-worker.js';
import type { Folded, FoldQuery, FoldResult, LocalStore, Position, PruneStep, StoreQuery } from './types.js';

/**
 * A query runs in slices of about this long in the worker; between them a write (or another reader)
 * takes its turn, so readers hold the store's writes back by at most about this much, not for the
 * length of a query.
 */
const QUERY_SLICE_MS = 100;

/** The worker takes requests in order: reads go one at a time, so a write waits behind at most one slice. */
class OneAtATime {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(work: () => Promise<T>): Promise<T> {
    const result = this.tail.then(work, work);
    this.tail = result.catch(() => {});
    return result;
  }
}

/** A query asked slice by slice until it has its readings, the store has no more, or maxScan ran out. */
async function querySliced(
  worker: RestartingWorker<Request>,
  query: StoreQuery,
  signal?: AbortSignal,
): Promise<{ records: LogRecord[]; scannedTo?: Position }> {
  const records: LogRecord[] = [];
  const limit = query.limit ?? 1000;
  let after = query.after;
  let scanLeft = query.maxScan ?? Infinity;
  for (;;) {
    signal?.throwIfAborted(); // its asker has gone: the next query (or write) goes now
    const maxScan = Number.isFinite(scanLeft) ? scanLeft : undefined;
    const slice = (await worker.call({
      op: 'query',
      query: { ...query, after, limit: limit - records.length, maxScan },
      sliceMs: QUERY_SLICE_MS,
    })) as { records: LogRecord[]; looked: number; resume?: Position };
    records.push(...slice.records);
    scanLeft -= slice.looked;
    if (!slice.resume || records.length >= limit) return { records };
    if (scanLeft <= 0) return { records, scannedTo: slice.resume };
    after = slice.resume;
  }
}

/** A fold asked slice by slice; each slice's buckets merged here (the readings stay in the worker). */
async function foldSliced(worker: RestartingWorker<Request>, query: FoldQuery, signal?: AbortSignal): Promise<FoldResult> {
  const series: Folded = new Map();
  let after: Position | undefined;
  let folded = 0;
  for (;;) {
    signal?.throwIfAborted();
    const slice = (await worker.call({ op: 'fold', query, after, left: query.maxScan - folded, sliceMs: QUERY_SLICE_MS })) as {
      series: Folded;
      looked: number;
      resume?: Position;
      more?: boolean;
    };
    mergeFolded(series, slice.series);
    folded += slice.looked;
    if (slice.more || !slice.resume) return { series, folded, more: slice.more === true };
    after = slice.resume;
  }
}

/** `key`: encrypt the database (SQLCipher format) with it; `readonly`: a reader beside the agent, changing nothing. */
export async function openSqliteStore(path: string, key?: Buffer, readonly = false): Promise<LocalStore> {
  let last = 0;
  const reads = new OneAtATime();
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
    query: async (query, signal) => (await reads.run(() => querySliced(worker, query, signal))).records,
    page: (query, signal) => reads.run(() => querySliced(worker, query, signal)),
    fold: (query, signal) => reads.run(() => foldSliced(worker, query, signal)),
    prune: async (rule, limit) => (await worker.call({ op: 'prune', rule, limit })) as PruneStep,
    remove: async (removal, limit) => (await worker.call({ op: 'remove', removal, limit })) as PruneStep,
    lastSeq: () => last,
    size: (topics) => reads.run(async () => (await worker.call({ op: 'size', topics })) as number),
    writtenBytes: () => worker.written,
    close: () => worker.close(),
  };
}
