// What every sink implements, and what it may know about the readings it is handed.
import type { Logger } from 'pino';
import type { OutBatch } from './record.js';

/** A batch encoded for the wire; the forwarder meters `bytes` against the bandwidth cap. */
export interface Encoded {
  /** Bytes that will go on the wire (after compression). */
  bytes: number;
}

export interface WriteResult {
  /** Records the sink refused one by one (by index into the batch); they go to dead letters. */
  rejected?: { index: number; reason: string }[];
}

export interface Sink<E extends Encoded = Encoded> {
  /** How many batches may be on the wire at once (default 1: one after the other). */
  readonly concurrency?: number;
  /** Connect, create tables: called before the first write and again after a failure. */
  start(): Promise<void>;
  /** Records with no representation in this sink (e.g. no fields) are refused here, not sent. */
  encode(records: OutBatch): Promise<{ encoded: E; refused: { index: number; reason: string }[] }>;
  /** Resolves once the sink confirmed every record; throws SinkError otherwise. */
  write(encoded: E, signal: AbortSignal): Promise<WriteResult>;
  close(): Promise<void>;
}

/**
 * How a failure should be handled:
 * - transient: the link or server; retry with backoff (or after `retryAfterMs`).
 * - down: a human must act (credentials, permissions, a missing database); retry rarely.
 * - invalid: the batch holds something the sink refuses; split it to find the record.
 */
export type FailureKind = 'transient' | 'down' | 'invalid';

export class SinkError extends Error {
  constructor(
    message: string,
    readonly kind: FailureKind,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

const TLS_TRUST_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_SIGNATURE_FAILURE',
]);

/** A server certificate this agent does not trust: retrying will not fix it, a person must. */
export function isTlsTrustError(err: unknown): boolean {
  return TLS_TRUST_CODES.has((err as { code?: string })?.code ?? '');
}

export const transient = (message: string, retryAfterMs?: number) => new SinkError(message, 'transient', retryAfterMs);
export const down = (message: string) => new SinkError(message, 'down');
export const invalid = (message: string) => new SinkError(message, 'invalid');

export type FieldType = 'string' | 'integer' | 'float' | 'boolean' | 'array' | 'object' | 'timestamp';

/** What a sink may know of the schema that accepted a reading. */
export interface SchemaInfo {
  measurement: string;
  tags: readonly string[];
  timestampField?: string;
  fields: Readonly<Record<string, FieldType>>;
}

export interface SchemaCatalog {
  /** By `name@version`, as records carry it; undefined when this run never loaded that version. */
  byId(id: string): SchemaInfo | undefined;
  list(): SchemaInfo[];
}

export interface SinkContext {
  agentId: string;
  schemas: SchemaCatalog;
  logger: Logger;
}
