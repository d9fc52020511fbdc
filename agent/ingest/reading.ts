// What the ingest stage hands to the durable log: an accepted reading, or a refused one with its
// reasons (consumers of the log hand refused readings over the same way).

/** A record before the log gives it a sequence number; payload is kept as JSON text to avoid re-encoding. */
export interface NewRecord {
  topic: string;
  receivedAt: number;
  clockSynced: boolean;
  /** While the clock is unsynchronised: the boot, and the time on its monotonic clock (see ingest/clock.ts). */
  boot?: string;
  mono?: number;
  deviceTime?: number;
  /** JSON text of the payload (already validated), or base64 text when encoding is "base64". */
  payloadJson: string;
  encoding?: 'base64';
  clientId: string;
  schema?: string;
  qos: 0 | 1 | 2;
}

/** A refused reading as ingest or a consumer hands it over; the log cuts the payload at its cap. */
export interface RefusedReading {
  time: number;
  topic: string;
  clientId: string;
  payload: Buffer;
  reasons: { path: string; message: string }[];
  /** Set when a sink refused an accepted reading: which sink. */
  sink?: string;
  /** Set when a consumer of the log (the local store, a sink) refused an accepted reading: its name. */
  consumer?: string;
  /** The refused reading's seq, when it had been accepted. */
  seq?: number;
}
