// A log record as sinks see it: the small head parsed, the payload kept as the JSON text it is
// stored as (PostgreSQL and MQTT send it as is; only sinks that need the values parse it).
import { ChunkText, splitRecord, type LogRecord, type RecordHead } from '../../log/index.js';
import { correctClock, type ClockOffsets } from '../../ingest/clock-correction.js';

export type { LogRecord };

export interface OutRecord extends RecordHead {
  agentId: string;
  /** The payload's JSON text; for raw topics a JSON string of base64. */
  payloadJson: string;
  /** Length of the log line: the record's size before the sink encodes it. */
  bytes: number;
  payload(): unknown;
}

class LineRecord implements OutRecord {
  readonly seq: number;
  readonly topic: string;
  readonly receivedAt: number;
  readonly clockSynced: boolean;
  readonly clockCorrectionMs?: number;
  readonly deviceTime?: number;
  readonly encoding?: 'base64';
  readonly clientId: string;
  readonly schema?: string;
  readonly qos: 0 | 1 | 2;

  constructor(
    head: RecordHead,
    readonly agentId: string,
    readonly payloadJson: string,
    readonly bytes: number,
  ) {
    // Field by field, not Object.assign: every LineRecord then has one shape, whatever the head omits.
    this.seq = head.seq;
    this.topic = head.topic;
    this.receivedAt = head.receivedAt;
    this.clockSynced = head.clockSynced;
    this.clockCorrectionMs = head.clockCorrectionMs;
    this.deviceTime = head.deviceTime;
    this.encoding = head.encoding;
    this.clientId = head.clientId;
    this.schema = head.schema;
    this.qos = head.qos;
  }

  /** Parsed on each call, not kept: a sink reads it once while encoding, and a batch stays lean. */
  payload(): unknown {
    return JSON.parse(this.payloadJson);
  }
}

export function toOutRecord(line: string, agentId: string, clock?: ClockOffsets): OutRecord {
  const { head, payloadJson } = splitRecord(line, clock);
  return new LineRecord(head, agentId, payloadJson, line.length);
}

/**
 * A batch's readings, kept where the log decompressed them (off the JS heap) and decoded each time a
 * sink asks for one. A batch lives from gathering until the sink confirms it, across many young-
 * generation GCs: a string or an object per reading held that long would be copied, then promoted
 * to the old generation, batch after batch.
 */
export class OutBatch implements Iterable<OutRecord> {
  constructor(
    readonly agentId: string,
    private readonly texts: readonly ChunkText[],
    /** Per reading: the text that holds it, and its line there. */
    private readonly textOf: readonly number[],
    private readonly lineOf: readonly number[],
    /** Corrects the times of readings received while the clock was unsynchronised. */
    private readonly clock?: ClockOffsets,
  ) {}

  /** A batch of log lines not read from the log (tests, benchmarks). */
  static of(lines: readonly string[], agentId: string): OutBatch {
    const k = lines.map((_, i) => i);
    return new OutBatch(
      agentId,
      [ChunkText.of(lines, 0)],
      k.map(() => 0),
      k,
    );
  }

  get length(): number {
    return this.lineOf.length;
  }

  /** Bytes of the readings before encoding. */
  get bytes(): number {
    let n = 0;
    for (let i = 0; i < this.lineOf.length; i++) n += this.texts[this.textOf[i]].lineBytes(this.lineOf[i]);
    return n;
  }

  at(index: number): OutRecord {
    return toOutRecord(this.line(index), this.agentId, this.clock);
  }

  /**
   * The reading with its payload parsed, in one JSON.parse of its line: for a sink that needs the
   * payload's values anyway, cheaper than reading the head by hand and then parsing the payload.
   */
  parsed(index: number): LogRecord {
    // Not decodeRecord(): that copies the parse into a record with agentId first, for stores that write it out.
    const record = JSON.parse(this.line(index)) as LogRecord;
    record.agentId = this.agentId;
    return correctClock(record, this.clock);
  }

  private line(index: number): string {
    return this.texts[this.textOf[index]].line(this.lineOf[index]);
  }

  slice(from: number, to?: number): OutBatch {
    return new OutBatch(this.agentId, this.texts, this.textOf.slice(from, to), this.lineOf.slice(from, to), this.clock);
  }

  *[Symbol.iterator](): Iterator<OutRecord> {
    for (let i = 0; i < this.lineOf.length; i++) yield this.at(i);
  }
}
