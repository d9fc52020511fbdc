// A log record as sinks see it: the small head parsed, the payload kept as the JSON text it is
// stored as (PostgreSQL and MQTT send it as is; only sinks that need the values parse it).
import { splitRecord, type RecordHead } from '../agent/buffer/record.js';

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

export function toOutRecord(line: string, agentId: string): OutRecord {
  const { head, payloadJson } = splitRecord(line);
  return new Record(head, agentId, payloadJson, line.length);
}
