// A log record as sinks see it: the small head parsed, the payload kept as the JSON text it is
// stored as (PostgreSQL and MQTT send it as is; only sinks that need the values parse it).
import { decodeHead, PAYLOAD_KEY, type RecordHead } from '../agent/buffer/record.js';

export interface OutRecord extends RecordHead {
  agentId: string;
  /** The payload's JSON text; for raw topics a JSON string of base64. */
  payloadJson: string;
  /** Length of the log line: the record's size before the sink encodes it. */
  bytes: number;
  payload(): unknown;
}

class Record implements OutRecord {
  seq!: number;
  topic!: string;
  receivedAt!: number;
  clockSynced!: boolean;
  deviceTime?: number;
  encoding?: 'base64';
  clientId!: string;
  schema?: string;
  qos!: 0 | 1 | 2;

  constructor(
    head: RecordHead,
    readonly agentId: string,
    readonly payloadJson: string,
    readonly bytes: number,
  ) {
    Object.assign(this, head);
  }

  /** Parsed on each call, not kept: a sink reads it once while encoding, and a batch stays lean. */
  payload(): unknown {
    return JSON.parse(this.payloadJson);
  }
}

/** The log writes the payload last, so the head ends where the first `,"payload":` begins. */
export function toOutRecord(line: string, agentId: string): OutRecord {
  const at = line.indexOf(PAYLOAD_KEY);
  const head = decodeHead(line, at) ?? (JSON.parse(`${line.slice(0, at)}}`) as RecordHead);
  return new Record(head, agentId, line.slice(at + PAYLOAD_KEY.length, -1), line.length);
}
