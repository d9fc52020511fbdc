// The unit every stage after ingest moves: one accepted reading.

import { correctClock, type ClockOffsets } from '../ingest/clock-correction.js';
import type { NewRecord, RefusedReading } from '../ingest/reading.js';

export type { NewRecord, RefusedReading } from '../ingest/reading.js';

export interface LogRecord {
  /** Monotonic, never reused: (agentId, seq) identifies a reading everywhere. */
  seq: number;
  agentId: string;
  topic: string;
  /** Wall-clock receive time, ms since the epoch. */
  receivedAt: number;
  /** Whether the wall clock was synchronised (NTP) when the reading arrived. */
  clockSynced: boolean;
  /** Set when receivedAt was corrected after the clock synchronised: by how much (ms). */
  clockCorrectionMs?: number;
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

/** JSON string literals of the few topics, client ids and schema ids a Pi sees, made once. */
const quoted = new Map<string, string>();
function quote(s: string): string {
  let q = quoted.get(s);
  if (q === undefined) {
    if (quoted.size > 10_000) quoted.clear();
    quoted.set(s, (q = JSON.stringify(s)));
  }
  return q;
}

/**
 * One JSON line, built by hand on the hot path; the payload text is spliced in as it came (it is
 * valid JSON already) and always comes last, so readers can find it without parsing.
 */
export function encodeRecord(seq: number, r: NewRecord): string {
  let line = `{"seq":${seq},"topic":${quote(r.topic)},"receivedAt":${r.receivedAt},"clockSynced":${r.clockSynced}`;
  if (r.boot !== undefined) line += `,"boot":${quote(r.boot)},"mono":${r.mono}`;
  if (r.deviceTime !== undefined) line += `,"deviceTime":${r.deviceTime}`;
  if (r.encoding !== undefined) line += `,"encoding":"${r.encoding}"`;
  line += `,"clientId":${quote(r.clientId)}`;
  if (r.schema !== undefined) line += `,"schema":${quote(r.schema)}`;
  const payload = r.encoding === 'base64' ? `"${r.payloadJson}"` : r.payloadJson;
  return `${line},"qos":${r.qos},"payload":${payload}}`;
}

export type RecordHead = Omit<LogRecord, 'payload' | 'agentId'> & Pick<NewRecord, 'boot' | 'mono'>;

export const PAYLOAD_KEY = ',"payload":';

/**
 * The head of a line (everything before `,"payload":`, which starts at `end`) read the way
 * encodeRecord wrote it, without JSON.parse: consumers read every line, so this is their hot path.
 * Null when the line is not in exactly that form (a string with an escape, an older layout): then
 * JSON.parse reads it.
 */
export function decodeHead(line: string, end: number): RecordHead | null {
  const r = new HeadReader(line);
  if (!r.key('{"seq":')) return null;
  const seq = r.int();
  if (!r.key(',"topic":')) return null;
  const topic = r.string();
  if (topic === undefined || !r.key(',"receivedAt":')) return null;
  const receivedAt = r.int();
  if (!r.key(',"clockSynced":')) return null;
  const clockSynced = r.key('true') ? true : r.key('false') ? false : undefined;
  if (clockSynced === undefined) return null;
  const head: RecordHead = { seq, topic, receivedAt, clockSynced, clientId: '', qos: 0 };
  if (r.key(',"boot":')) {
    head.boot = r.string();
    if (head.boot === undefined || !r.key(',"mono":')) return null;
    head.mono = r.int();
  }
  if (r.key(',"deviceTime":')) head.deviceTime = r.int();
  if (r.key(',"encoding":"base64"')) head.encoding = 'base64';
  if (!r.key(',"clientId":')) return null;
  const clientId = r.string();
  if (clientId === undefined) return null;
  head.clientId = clientId;
  if (r.key(',"schema":')) {
    const schema = r.string();
    if (schema === undefined) return null;
    head.schema = schema;
  }
  if (!r.key(',"qos":')) return null;
  const qos = r.int();
  if (r.i !== end || (qos !== 0 && qos !== 1 && qos !== 2) || !Number.isSafeInteger(seq) || !Number.isSafeInteger(receivedAt)) return null;
  head.qos = qos;
  return head;
}

/** A cursor over a line as encodeRecord writes it; anything unexpected makes decodeHead give up. */
class HeadReader {
  i = 0;
  constructor(private readonly line: string) {}

  key(k: string): boolean {
    if (!this.line.startsWith(k, this.i)) return false;
    this.i += k.length;
    return true;
  }

  /** An integer (what encodeRecord writes for seq and times); NaN when there are no digits. */
  int(): number {
    const { line } = this;
    const negative = line.charCodeAt(this.i) === 0x2d;
    if (negative) this.i++;
    const from = this.i;
    let v = 0;
    for (let c = line.charCodeAt(this.i); c >= 0x30 && c <= 0x39; c = line.charCodeAt(++this.i)) v = v * 10 + (c - 0x30);
    if (this.i === from) return NaN;
    return negative ? -v : v;
  }

  /** A string without escapes; undefined when it has one (JSON.parse reads those). */
  string(): string | undefined {
    const { line } = this;
    if (line.charCodeAt(this.i) !== 0x22) return undefined;
    const close = line.indexOf('"', this.i + 1);
    if (close < 0) return undefined;
    const s = line.slice(this.i + 1, close);
    this.i = close + 1;
    return s.includes('\\') ? undefined : s;
  }
}

/** A line's head and its payload's JSON text (for raw topics a JSON string of base64), unparsed. */
export function splitRecord(line: string, clock?: ClockOffsets): { head: RecordHead; payloadJson: string } {
  const at = line.indexOf(PAYLOAD_KEY);
  const head = decodeHead(line, at) ?? (JSON.parse(`${line.slice(0, at)}}`) as RecordHead);
  return { head: correctClock(head, clock), payloadJson: line.slice(at + PAYLOAD_KEY.length, -1) };
}

/** A reading's payload as it was received: JSON text, or the bytes a raw topic's base64 holds. */
export function receivedPayload(head: Pick<RecordHead, 'encoding'>, payloadJson: string): Buffer {
  return head.encoding === 'base64' ? Buffer.from(JSON.parse(payloadJson) as string, 'base64') : Buffer.from(payloadJson);
}

export function decodeRecord(line: string, agentId: string, clock?: ClockOffsets): LogRecord {
  return correctClock(
    { agentId, ...(JSON.parse(line) as Omit<LogRecord, 'agentId'>) } as LogRecord & Pick<NewRecord, 'boot' | 'mono'>,
    clock,
  );
}

/** Consecutive readings as the log holds them: JSON lines, parsed only if a consumer asks. */
export class LogBatch {
  private parsed: LogRecord[] | undefined;

  constructor(
    readonly agentId: string,
    /** One JSON line per reading, seqs firstSeq, firstSeq + 1, ... */
    readonly lines: string[],
    readonly firstSeq: number,
    /** Corrects the times of readings received while the clock was unsynchronised. */
    readonly clock?: ClockOffsets,
  ) {}

  get lastSeq(): number {
    return this.firstSeq + this.lines.length - 1;
  }

  records(): LogRecord[] {
    this.parsed ??= this.lines.map((line) => decodeRecord(line, this.agentId, this.clock));
    return this.parsed;
  }
}

/** A reading that was refused, kept with every reason. */
/** A dead letter as the log keeps it: the refused reading, its payload cut at the cap. */
export interface DeadLetter extends Omit<RefusedReading, 'payload'> {
  id: number;
  /** The payload as received, base64, cut at the configured cap. */
  payload: string;
  payloadBytes: number;
  truncated: boolean;
}
