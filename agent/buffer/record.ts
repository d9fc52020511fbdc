// The unit every stage after ingest moves: one accepted reading.

export interface LogRecord {
  /** Monotonic, never reused: (agentId, seq) identifies a reading everywhere. */
  seq: number;
  agentId: string;
  topic: string;
  /** Wall-clock receive time, ms since the epoch. */
  receivedAt: number;
  /** Whether the wall clock was synchronised (NTP) when the reading arrived. */
  clockSynced: boolean;
  /** The device's own timestamp (ms since the epoch), when the schema names one. */
  deviceTime?: number;
  /** The reading: parsed JSON, or base64 text when `encoding` is "base64" (topics stored raw). */
  payload: unknown;
  encoding?: 'base64';
  clientId: string;
  /** `name@version` of the schema that accepted it; absent for topics without a schema. */
  schema?: string;
  qos: 0 | 1 | 2;
}

/** A record before the log gives it a sequence number; payload is kept as JSON text to avoid re-encoding. */
export interface NewRecord {
  topic: string;
  receivedAt: number;
  clockSynced: boolean;
  deviceTime?: number;
  /** JSON text of the payload (already validated), or base64 text when encoding is "base64". */
  payloadJson: string;
  encoding?: 'base64';
  clientId: string;
  schema?: string;
  qos: 0 | 1 | 2;
}

/** One JSON line; the payload text is spliced in as it came, it is valid JSON already. */
export function encodeRecord(seq: number, r: NewRecord): string {
  const head = {
    seq,
    topic: r.topic,
    receivedAt: r.receivedAt,
    clockSynced: r.clockSynced,
    deviceTime: r.deviceTime,
    encoding: r.encoding,
    clientId: r.clientId,
    schema: r.schema,
    qos: r.qos,
  };
  const payload = r.encoding === 'base64' ? JSON.stringify(r.payloadJson) : r.payloadJson;
  return `${JSON.stringify(head).slice(0, -1)},"payload":${payload}}`;
}

export function decodeRecords(text: string, agentId: string): LogRecord[] {
  const out: LogRecord[] = [];
  for (const line of text.split('\n')) {
    if (line) out.push({ agentId, ...(JSON.parse(line) as Omit<LogRecord, 'agentId'>) });
  }
  return out;
}

/** A reading that was refused, kept with every reason. */
export interface DeadLetter {
  id: number;
  time: number;
  topic: string;
  clientId: string;
  /** The payload as received, base64, cut at the configured cap. */
  payload: string;
  payloadBytes: number;
  truncated: boolean;
  reasons: { path: string; message: string }[];
}
