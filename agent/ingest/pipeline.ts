// The ingest stage: what the broker hands over becomes a validated record in the durable log, or a
// dead letter with every reason. The broker's acknowledgement waits for whichever is durable.
import type { InboundMessage, PublishHook } from '../../embedded-broker/index.js';
import type { NewRecord, RefusedReading } from './reading.js';
import { breaksLimits, type JsonLimits } from './json-limits.js';
import { refusalReasons, type SchemaRegistry } from './schemas.js';

import type { IngestConfig } from './config.js';

/** What ingest needs of the durable log (the runtime hands it the log). */
export interface IngestLog {
  /** Give the reading a seq; `durable` settles once it is on disk. */
  append(record: NewRecord): { seq: number; durable: Promise<void> };
  /** Keep a refused reading, waiting while the dead letters are full and set to hold. */
  appendDeadLetterWhenRoom(refused: RefusedReading): Promise<void>;
  readonly holdingDeadLetters: boolean;
  /** Bytes appended and not yet committed. */
  readonly pendingBytes: number;
  /** False while the log refuses writes (a disk error, disk pressure). */
  readonly accepting: boolean;
}

type Unmatched = IngestConfig['unmatched'];
type Qos0Overflow = IngestConfig['qos0Overflow'];

export interface IngestOptions {
  schemas: SchemaRegistry;
  log: IngestLog;
  unmatched: Unmatched;
  qos0Overflow: Qos0Overflow;
  /** What a JSON payload may hold; beyond it the payload is dead-lettered unparsed. */
  limits: JsonLimits;
  /** Above this many bytes awaiting commit, senders are held (and QoS 0 readings dropped under policy `drop`). */
  maxPendingBytes: number;
  /** The receive time, and whether (and how) it can be trusted. */
  clock: { stamp(): Pick<NewRecord, 'receivedAt' | 'clockSynced' | 'boot' | 'mono'> };
  /** Whether the disk lets ingest take new readings (disk pressure below `critical`); default: always. */
  admission?: Admission;
  /** Told of each reading taken or refused, by topic and client (sensors watched for silence). */
  watch?: Watch;
}

export interface Watch {
  seen(topic: string, clientId: string): void;
  refused(topic: string, clientId: string): void;
}

/** What keeps ingest from taking readings while the disk has no room for them. */
export interface Admission {
  readonly accepting: boolean;
  /** Resolves once readings may be taken again. */
  accepts(): Promise<void>;
}

export interface IngestStats {
  accepted: number;
  deadLettered: number;
  qos0Dropped: number;
  /** Readings that waited for disk space before they were taken. */
  heldForDisk: number;
  /** Refused readings that waited for room among the dead letters (ingest.deadLetters.whenFull: hold). */
  heldForDeadLetters: number;
  /** Readings refused, per schema id (`none` where no schema matched). */
  refusedBySchema: Record<string, number>;
}

/** A reading handed to ingest other than by the broker: it may keep the time it first arrived. */
export type Submitted = InboundMessage & { receivedAt?: number };

export interface Reason {
  path: string;
  message: string;
}

/** What became of readings handed in over HTTP: all taken (their seqs, once durable), or none, and why. */
export type Submission =
  | { taken: true; seqs: number[] }
  | { taken: false; refused: { index: number; reasons: Reason[] }[] }
  | { taken: false; unavailable: string };

class Refused {
  constructor(readonly reasons: Reason[]) {}
}

/** Device time from an ISO 8601 string or epoch seconds/milliseconds. */
function deviceTime(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return value < 1e11 ? Math.round(value * 1000) : Math.round(value);
  if (typeof value === 'string') {
    const t = Date.parse(value);
    return Number.isNaN(t) ? undefined : t;
  }
  return undefined;
}

/** The ingest stage: the broker's hook and HTTP's submit, with what became of each reading. */
export class Ingest {
  readonly stats: IngestStats = {
    accepted: 0,
    deadLettered: 0,
    qos0Dropped: 0,
    heldForDisk: 0,
    heldForDeadLetters: 0,
    refusedBySchema: {},
  };

  constructor(private readonly opts: IngestOptions) {}

  /**
   * For the broker: each message it accepts from a client. Below the critical watermark nothing new
   * is taken: a reading waits, unacknowledged, with its sender held, until there is room (QoS 0
   * under policy `drop` is dropped and counted instead).
   */
  readonly hook: PublishHook = (msg) => {
    const { admission } = this.opts;
    if (!admission || admission.accepting) return this.take(msg);
    if (msg.qos === 0 && this.opts.qos0Overflow === 'drop') {
      this.stats.qos0Dropped++;
      return undefined;
    }
    this.stats.heldForDisk++;
    return { safe: admission.accepts().then(() => this.take(msg)?.safe), holdSender: true };
  };

  /**
   * For HTTP ingest: the readings are checked first, and taken only if every one passes (the
   * sender is told why, so nothing is dead-lettered); resolves once they are durable.
   */
  async submit(messages: Submitted[]): Promise<Submission> {
    const { opts } = this;
    if (opts.admission && !opts.admission.accepting)
      return { taken: false, unavailable: 'disk pressure is critical: no new readings are taken until space is freed' };
    const records: NewRecord[] = [];
    const refused: { index: number; reasons: Reason[] }[] = [];
    messages.forEach((msg, index) => {
      try {
        records.push(this.toRecord(msg));
      } catch (err) {
        refused.push({ index, reasons: reasonsOf(err) });
      }
    });
    if (refused.length) return { taken: false, refused };
    const appended = records.map((r) => opts.log.append(r));
    this.stats.accepted += appended.length;
    for (const m of messages) opts.watch?.seen(m.topic, m.clientId);
    await Promise.all(appended.map((a) => a.durable));
    return { taken: true, seqs: appended.map((a) => a.seq) };
  }

  private take(msg: InboundMessage): ReturnType<PublishHook> {
    const { opts, stats } = this;
    // Readings ride the commits without holding their senders until the log falls behind or its
    // commits fail (disk full): then QoS 0 is held like the rest or dropped (counted), per the
    // policy. Held senders' sockets are read only as their readings become durable (TCP backpressure).
    const behind = opts.log.pendingBytes > opts.maxPendingBytes || !opts.log.accepting;
    if (behind && msg.qos === 0 && opts.qos0Overflow === 'drop') {
      stats.qos0Dropped++;
      return undefined;
    }
    let record: NewRecord;
    try {
      record = this.toRecord(msg);
    } catch (err) {
      // Whatever a payload makes go wrong is that payload's fault: dead-letter it, keep the client.
      // Dead letters full (whenFull: hold): the sender is held until they are replayed or purged.
      const full = opts.log.holdingDeadLetters;
      if (full && msg.qos === 0 && opts.qos0Overflow === 'drop') {
        stats.qos0Dropped++;
        return undefined;
      }
      return { safe: this.deadLetter(msg, reasonsOf(err)), holdSender: behind || full };
    }
    const durable = opts.log.append(record).durable;
    stats.accepted++;
    opts.watch?.seen(msg.topic, msg.clientId);
    return { safe: durable, holdSender: behind };
  }

  private toRecord(msg: Submitted): NewRecord {
    const { opts } = this;
    const schema = opts.schemas.match(msg.topic);
    const stamp = opts.clock.stamp();
    const record: NewRecord = {
      topic: msg.topic,
      receivedAt: msg.receivedAt ?? stamp.receivedAt,
      clockSynced: stamp.clockSynced,
      // A time given (a replayed dead letter's first arrival) is kept as it is, never corrected.
      boot: msg.receivedAt === undefined ? stamp.boot : undefined,
      mono: msg.receivedAt === undefined ? stamp.mono : undefined,
      deviceTime: undefined,
      payloadJson: '',
      encoding: undefined,
      clientId: msg.clientId,
      schema: schema?.id,
      qos: msg.qos,
    };
    if (!schema && opts.unmatched === 'reject') throw new Refused([{ path: '', message: 'no schema for this topic' }]);
    if (!schema && opts.unmatched === 'raw') {
      record.payloadJson = msg.payload.toString('base64');
      record.encoding = 'base64';
      return record;
    }
    const { text, value } = this.decode(msg);
    record.payloadJson = text;
    if (schema) {
      const reasons = refusalReasons(schema, value);
      if (reasons) throw new Refused(reasons);
      if (schema.timestampField) record.deviceTime = deviceTime((value as Record<string, unknown>)[schema.timestampField]);
    }
    return record;
  }

  private decode(msg: InboundMessage): { text: string; value: unknown } {
    const text = msg.payload.toString('utf8');
    const tooMuch = breaksLimits(text, this.opts.limits);
    if (tooMuch) throw new Refused([{ path: '', message: `payload refused: ${tooMuch}` }]);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new Refused([{ path: '', message: `payload is not JSON: ${(err as Error).message}` }]);
    }
    // The log keeps one reading per line: pretty-printed JSON is compacted, other payloads kept as sent.
    return { text: /[\n\r]/.test(text) ? JSON.stringify(value) : text, value };
  }

  private deadLetter(msg: InboundMessage, reasons: Reason[]): Promise<void> {
    const { opts, stats } = this;
    stats.deadLettered++;
    const schema = opts.schemas.match(msg.topic)?.id ?? 'none';
    stats.refusedBySchema[schema] = (stats.refusedBySchema[schema] ?? 0) + 1;
    opts.watch?.refused(msg.topic, msg.clientId);
    if (opts.log.holdingDeadLetters) stats.heldForDeadLetters++;
    return opts.log.appendDeadLetterWhenRoom({ time: Date.now(), topic: msg.topic, clientId: msg.clientId, payload: msg.payload, reasons });
  }
}

/** Why a reading was refused: its schema's reasons, or what went wrong while reading it. */
function reasonsOf(err: unknown): Reason[] {
  return err instanceof Refused ? err.reasons : [{ path: '', message: `not ingested: ${(err as Error).message}` }];
}
