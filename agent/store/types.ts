import type { ChunkBatch } from '../buffer/chunk-batch.js';
import type { LogRecord } from '../buffer/record.js';

export interface StoreQuery {
  /** Exact topic or MQTT pattern (+, #). */
  topic?: string;
  /** receivedAt range, ms since the epoch, inclusive. */
  from?: number;
  to?: number;
  /** Only readings with seq greater than this (for paging). */
  afterSeq?: number;
  limit?: number;
}

/** The local, queryable copy of the readings. Writes are idempotent on seq. */
export interface LocalStore {
  readonly kind: string;
  /** Store a batch of consecutive readings (the log's chunks); ones already stored are skipped. */
  write(batch: ChunkBatch): Promise<void>;
  /** How many writes may be outstanding at once, done in the order given (default 1). */
  readonly writesInFlight?: number;
  query(q: StoreQuery): Promise<LogRecord[]>;
  /** Highest seq stored. */
  lastSeq(): number;
  /** Bytes the store wrote to storage since it opened (SD-card wear); undefined where the system does not say. */
  writtenBytes(): number | undefined;
  close(): Promise<void>;
}
