// The local consumers, the store and the rollups: each reads the log's compressed chunks through the
// engine and writes them in its database thread. Created from their config sections here; the
// runtime only connects them to the log, the clock and disk pressure.
import type { ChunkBatch, DurableLog } from '../log/index.js';
import type { ClockOffsets } from '../ingest/clock-correction.js';
import { Closers } from '../lib/closers.js';
import type { Logger } from '../lib/logger.js';
import { chunkDelivery } from './chunk-delivery.js';
import { ConsumerEngine, type EngineStatus } from './engine.js';
import { defaultRollupPath, openRollups, ROLLUP_CONSUMER, type RollupConfig, type Rollups, type RollupSinks } from './rollups/index.js';
import type { StoreConfig } from './store/config.js';
import { defaultStorePath, openStore, STORE_CONSUMER, StoreTail, withTail, type LocalStore } from './store/index.js';

/** A local consumer: the database it writes, the same for queries, and how it runs. */
export interface Local<T> {
  readonly target: T;
  /** The database as queries see it: with every reading committed before each query. */
  readonly reads: T;
  readonly name: string;
  status(): EngineStatus;
  /** Resolves once it holds everything durable up to seq (false after timeoutMs). */
  caughtUp(seq: number, timeoutMs?: number): Promise<boolean>;
}

export interface LocalConsumers {
  store?: Local<LocalStore>;
  rollups?: Local<Rollups>;
  stop(): Promise<void>;
}

export interface LocalOptions {
  dataDir: string;
  store: StoreConfig;
  rollups: RollupConfig;
  /** Which sinks take rollups (and the rollups' dead letters). */
  rollupSinks: RollupSinks;
  /** Encryption at rest: each database's key. */
  key?: (part: 'store' | 'rollups') => Buffer;
  log: DurableLog;
  /**
   * Why a write of about `bytes` must wait now (disk pressure allows only deletions), or undefined;
   * the bytes count towards free space's next read.
   */
  admit(bytes: number): Promise<string | undefined>;
  /** While true consumers take nothing (readings' times are not final). */
  clockHolding(): boolean;
  clockOffsets(): ClockOffsets;
  /** Opens a database, waiting while the disk refuses it. */
  open<T>(part: 'store' | 'rollups', open: () => Promise<T>): Promise<T>;
  logger: Logger;
}

/** Longest a query waits for the readings committed before it to reach the database it reads. */
const FRESH_READ_WAIT_MS = 1000;

/** Opens the store and the rollups the config asks for and starts their consumers. */
export async function startLocalConsumers(o: LocalOptions): Promise<LocalConsumers> {
  const started = new Closers();
  try {
    const store = o.store.backend === 'none' ? undefined : await startStore(o, o.store.backend, started);
    const rollups = o.rollups.enabled ? await startRollups(o, started) : undefined;
    // Rollups turned off must not hold the log's chunks back.
    if (!rollups && o.log.consumers().includes(ROLLUP_CONSUMER)) await o.log.dropConsumer(ROLLUP_CONSUMER);
    return { store, rollups, stop: () => started.closeAll() };
  } catch (err) {
    await started.closeAll();
    throw err;
  }
}

async function startStore(o: LocalOptions, backend: Exclude<StoreConfig['backend'], 'none'>, started: Closers): Promise<Local<LocalStore>> {
  const s = o.store;
  const store = await o.open('store', () => openStore(backend, s.path ?? defaultStorePath(backend, o.dataDir), o.key?.('store')));
  started.push(() => store.close());
  const gather = { maxRecords: s.batchSize, maxAgeMs: s.gatherMs, idleAgeMs: s.maxGatherMs };
  // Its blocks take about the bytes of the log's chunks. Counted: a store catching up after ingest
  // stopped at `critical` writes while the log writes nothing.
  const local = await run(o, STORE_CONSUMER, store, gather, started, (batch) => batch.bytes);
  // Queries merge the log's tail rather than have the store write what it gathers (fewer writes).
  const tail = new StoreTail({ log: o.log, consumer: STORE_CONSUMER, holding: o.clockHolding, offsets: o.clockOffsets });
  return { ...local, reads: withTail(store, tail, () => local.caughtUp(o.log.lastSeq, FRESH_READ_WAIT_MS)) };
}

async function startRollups(o: LocalOptions, started: Closers): Promise<Local<Rollups>> {
  const r = o.rollups;
  const rollups = await o.open('rollups', () => openRollups(r, r.path ?? defaultRollupPath(o.dataDir), o.key?.('rollups'), o.rollupSinks));
  started.push(() => rollups.close());
  const local = await run(
    o,
    ROLLUP_CONSUMER,
    rollups,
    { maxRecords: r.batchSize, maxAgeMs: r.gatherMs, idleAgeMs: r.maxGatherMs },
    started,
  );
  // Buckets close as readings come; when none come, by the clock, once the rollups have all there is.
  const feed = rollups.feed;
  if (feed) {
    const ticker = setInterval(() => {
      if (local.status().lagRecords === 0)
        feed
          .tick(Date.now())
          .catch((err: Error) => o.logger.warn({ err: err.message }, 'closing rollup buckets failed; tried again shortly'));
    }, 2000);
    started.push(async () => clearInterval(ticker));
  }
  return local;
}

/** Runs a local consumer on the engine; its writes wait (an error of the moment) while disk pressure holds them. */
async function run<T extends { write(batch: ChunkBatch): Promise<void>; writesInFlight?: number; query(q: never): Promise<unknown> }>(
  o: LocalOptions,
  name: string,
  target: T,
  gather: { maxRecords: number; maxAgeMs: number; idleAgeMs: number },
  started: Closers,
  bytesOf: (batch: ChunkBatch) => number = () => 0,
): Promise<Local<T>> {
  const held = {
    write: async (batch: ChunkBatch) => {
      const why = await o.admit(bytesOf(batch));
      if (why) throw new Error(why);
      await target.write(batch);
    },
  };
  const consumer = new ConsumerEngine(o.log, chunkDelivery(name, held, o.log, o.store.maxBatchBytes, o.clockOffsets), {
    name,
    ...gather,
    hold: o.clockHolding,
    window: target.writesInFlight ?? 1,
    retry: { initialMs: 250, maxMs: 30_000 },
    logger: o.logger.child({ stage: name }),
  });
  await consumer.start();
  started.push(() => consumer.stop());
  return {
    name,
    target,
    reads: freshReads(target, consumer, o.log),
    status: () => consumer.status(),
    caughtUp: (seq, timeoutMs) => consumer.caughtUp(seq, timeoutMs),
  };
}

/**
 * The rollups as queries see them: a query first has the consumer write what waits (it may wait a
 * minute when readings are few), so that it sees every reading committed before it. (The store
 * merges the log's tail instead: store/tail.ts.)
 */
function freshReads<T extends { query(q: never): Promise<unknown> }>(target: T, consumer: ConsumerEngine<ChunkBatch>, log: DurableLog): T {
  const reads = new Set<PropertyKey>(['query', 'page', 'fold']);
  const fresh =
    (read: (...a: never[]) => Promise<unknown>) =>
    async (...args: never[]) => {
      await consumer.caughtUp(log.lastSeq, FRESH_READ_WAIT_MS);
      return read(...args);
    };
  return new Proxy(target, {
    get: (t, key) => {
      const value = t[key as keyof T];
      if (typeof value !== 'function') return value;
      const bound = (value as (...a: never[]) => Promise<unknown>).bind(t);
      return reads.has(key) ? fresh(bound) : bound;
    },
  });
}
