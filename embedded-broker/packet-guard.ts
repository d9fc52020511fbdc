// MQTT 3.1.1 rules Aedes does not enforce, checked on the raw bytes before its parser sees them.
// Only fixed headers and the few strings that matter are inspected; payloads are skipped, not copied.
import { isUtf8 } from 'node:buffer';

export interface GuardLimits {
  maxPayloadBytes: number;
  maxTopicLength: number;
  maxTopicLevels: number;
  /** Largest CONNECT: it comes before any login, so it is kept small. */
  maxConnectBytes: number;
  /** Let control characters (U+0001-U+001F, U+007F-U+009F) into topics, filters, client ids and user names. */
  allowControlCharacters?: boolean;
}

export interface Violation {
  reason: string;
  /** Bytes of the chunk that precede the offending packet (safe to hand to the parser). */
  okBytes: number;
  /** CONNACK return code to send before closing, when the spec asks for one. */
  connackCode?: number;
}

const CONNECT = 1,
  PUBLISH = 3,
  PUBACK = 4,
  PUBREC = 5,
  PUBREL = 6,
  PUBCOMP = 7,
  SUBSCRIBE = 8,
  UNSUBSCRIBE = 10,
  PINGREQ = 12,
  DISCONNECT = 14;
const ACKS = new Set([PUBACK, PUBREC, PUBREL, PUBCOMP]);
const SERVER_ONLY = new Set([2, 9, 11, 13]); // CONNACK, SUBACK, UNSUBACK, PINGRESP
const FLAGS_0010 = new Set([PUBREL, SUBSCRIBE, UNSUBSCRIBE]);
/** Bytes of a new chunk joined to a carried partial packet: enough for any fixed header and topic. */
const JOIN_PREFIX = 5 + 2 + 65535;

class Malformed extends Error {
  constructor(
    message: string,
    readonly connackCode?: number,
  ) {
    super(message);
  }
}

/** A control character: C0 (U+0001-U+001F), DEL (U+007F) or C1 (U+0080-U+009F: 0xC2 0x80-0x9F in UTF-8). */
function controlCharacterAt(b: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = b[i];
    if (c < 0x20 || c === 0x7f || (c === 0xc2 && i + 1 < to && b[i + 1] >= 0x80 && b[i + 1] <= 0x9f)) return true;
  }
  return false;
}

/**
 * What is wrong with a PUBLISH topic's bytes, if anything: one pass, no allocation unless a byte is
 * non-ASCII (the hot path). Every way a reading comes in (MQTT, HTTP) is held to it.
 */
function topicProblem(
  data: Buffer,
  start: number,
  end: number,
  limits: Omit<GuardLimits, 'maxPayloadBytes' | 'maxConnectBytes'>,
): string | undefined {
  let levels = 1;
  let ascii = true;
  for (let i = start; i < end; i++) {
    const c = data[i];
    if (c === 0x2f) levels++;
    else if (c === 0) return 'invalid UTF-8 in topic';
    else if (c >= 0x80) ascii = false;
  }
  if (!ascii && !isUtf8(data.subarray(start, end))) return 'invalid UTF-8 in topic';
  if (!limits.allowControlCharacters && controlCharacterAt(data, start, end)) return 'control character in topic';
  if (end - start > limits.maxTopicLength) return `topic longer than ${limits.maxTopicLength} bytes`;
  if (levels > limits.maxTopicLevels) return `topic deeper than ${limits.maxTopicLevels} levels`;
  return undefined;
}

/** The same rules for a topic that came another way (HTTP ingest). */
export function topicNameProblem(topic: string, limits: Omit<GuardLimits, 'maxPayloadBytes' | 'maxConnectBytes'>): string | undefined {
  const bytes = Buffer.from(topic);
  return topicProblem(bytes, 0, bytes.length, limits);
}

/** A cursor over one packet's inspected bytes; every read is bounds-checked. */
class Reader {
  pos = 0;
  constructor(
    private readonly buf: Buffer,
    readonly end: number,
    private readonly allowControl = false,
  ) {}
  byte(): number {
    if (this.pos >= this.end) throw new Malformed('packet too short');
    return this.buf[this.pos++];
  }
  u16(): number {
    return (this.byte() << 8) | this.byte();
  }
  bytes(): Buffer {
    const len = this.u16();
    if (this.pos + len > this.end) throw new Malformed('packet too short');
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }
  /**
   * A UTF-8 encoded string: well-formed, no surrogates, no U+0000 [MQTT-1.5.3-1, -2]; and, unless
   * allowed, no control characters, which the spec lets a server refuse [MQTT-1.5.3-3 note] and
   * Mosquitto 2 refuses in topics.
   */
  string(what: string): Buffer {
    const b = this.bytes();
    if (!isUtf8(b) || b.includes(0)) throw new Malformed(`invalid UTF-8 in ${what}`);
    if (!this.allowControl && controlCharacterAt(b, 0, b.length)) throw new Malformed(`control character in ${what}`);
    return b;
  }

  u16NonZero(what: string): number {
    const id = this.u16();
    if (id === 0) throw new Malformed(`${what} with packet identifier 0`); // [MQTT-2.3.1-1]
    return id;
  }
}

export class PacketGuard {
  private carry: Buffer | null = null;
  private skip = 0;
  private readonly maxPacket: number;

  constructor(private readonly limits: GuardLimits) {
    this.maxPacket = limits.maxPayloadBytes + limits.maxTopicLength + 4096;
  }

  /** Check the next chunk of a connection's bytes; undefined means all of it is fine. */
  feed(chunk: Buffer): Violation | undefined {
    let pos = 0;
    if (this.carry) {
      // Finish the packet that straddles the boundary on a small joined prefix, not a copy of the chunk.
      const carried = this.carry.length;
      const joined = Buffer.concat([this.carry, chunk.subarray(0, JOIN_PREFIX)]);
      this.carry = null;
      try {
        const consumed = this.inspect(joined, 0);
        if (consumed === 0) {
          this.carry = chunk.length <= JOIN_PREFIX ? joined : Buffer.concat([joined, chunk.subarray(JOIN_PREFIX)]);
          return undefined;
        }
        pos = consumed - carried;
      } catch (err) {
        if (!(err instanceof Malformed)) throw err;
        return { reason: err.message, okBytes: 0, connackCode: err.connackCode };
      }
    }
    while (pos < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - pos);
        this.skip -= n;
        pos += n;
        continue;
      }
      try {
        const consumed = this.inspect(chunk, pos);
        if (consumed === 0) {
          this.carry = Buffer.from(chunk.subarray(pos));
          break;
        }
        pos += consumed;
      } catch (err) {
        if (!(err instanceof Malformed)) throw err;
        return { reason: err.message, okBytes: pos, connackCode: err.connackCode };
      }
    }
    return undefined;
  }

  /** Inspect the packet starting at `start`; returns bytes consumed, or 0 if more data is needed. */
  private inspect(data: Buffer, start: number): number {
    const first = data[start];
    const type = first >> 4;
    const flags = first & 0x0f;
    if (type === 0 || type === 15) throw new Malformed(`reserved packet type ${type}`);
    if (SERVER_ONLY.has(type)) throw new Malformed(`packet type ${type} is sent only by servers`);
    if (type === PUBLISH ? (flags & 0x06) === 0x06 : flags !== (FLAGS_0010.has(type) ? 2 : 0)) {
      throw new Malformed(type === PUBLISH ? 'PUBLISH with QoS 3' : `reserved flag bits set in packet type ${type}`);
    }
    if (type === PUBLISH && (flags & 0x0e) === 0x08) throw new Malformed('QoS 0 PUBLISH with DUP set'); // [MQTT-3.3.1-2]
    const header = remainingLength(data, start + 1);
    if (!header) return 0;
    const { length, bytes } = header;
    if (length > this.maxPacket) throw new Malformed(`packet of ${length} bytes exceeds the size limit`);
    if (type === CONNECT && length > this.limits.maxConnectBytes)
      throw new Malformed(`CONNECT of ${length} bytes exceeds ${this.limits.maxConnectBytes}`);
    const body = start + 1 + bytes;
    const wanted = this.inspectedLength(type, (flags >> 1) & 3, data, body, length);
    if (wanted === undefined || body + wanted > data.length) return 0;
    if (type === PUBLISH) {
      this.checkPublish(data, body, length, (flags >> 1) & 3);
      this.skip = length - wanted;
      return 1 + bytes + wanted;
    }
    const reader = new Reader(data, body + wanted, this.limits.allowControlCharacters);
    reader.pos = body;
    if (type === CONNECT) checkConnect(reader);
    else if (type === SUBSCRIBE) this.checkSubscribe(reader);
    else if (type === UNSUBSCRIBE) this.checkUnsubscribe(reader);
    else if (ACKS.has(type)) {
      if (length !== 2) throw new Malformed(`packet type ${type} with a remaining length of ${length}, not 2`); // [MQTT-3.4.1, 3.5.1, 3.6.1, 3.7.1]
      reader.u16NonZero(`packet type ${type}`);
    } else if ((type === PINGREQ || type === DISCONNECT) && length !== 0) {
      throw new Malformed(`packet type ${type} with a remaining length of ${length}, not 0`); // [MQTT-3.12.1, 3.14.1]: no variable header, no payload
    }
    this.skip = length - wanted;
    return 1 + bytes + wanted;
  }

  /** How much of a packet's body must be seen to check it (undefined: not yet known). */
  private inspectedLength(type: number, qos: number, data: Buffer, body: number, length: number): number | undefined {
    if (type === CONNECT || type === SUBSCRIBE || type === UNSUBSCRIBE) return length;
    if (ACKS.has(type)) return Math.min(length, 2);
    if (type !== PUBLISH) return 0;
    if (length < 2) throw new Malformed('packet too short');
    if (body + 2 > data.length) return undefined;
    return Math.min(length, 2 + data.readUInt16BE(body) + (qos > 0 ? 2 : 0)); // the topic, and a packet id at QoS > 0
  }

  private topicFilter(r: Reader): void {
    const filter = r.string('topic filter');
    let levels = 1;
    for (const c of filter) if (c === 0x2f) levels++;
    this.checkTopicLimits(filter.length, levels, 'topic filter');
  }

  /** The hot path: one pass over the topic bytes, no allocation unless a byte is non-ASCII. */
  private checkPublish(data: Buffer, body: number, length: number, qos: number): void {
    const topicLength = data.readUInt16BE(body);
    const start = body + 2;
    const end = start + topicLength;
    if (end > body + length) throw new Malformed('packet too short');
    const problem = topicProblem(data, start, end, this.limits);
    if (problem) throw new Malformed(problem);
    const payload = length - 2 - topicLength - (qos > 0 ? 2 : 0);
    if (payload < 0) throw new Malformed('packet too short');
    if (qos > 0 && data.readUInt16BE(end) === 0) throw new Malformed('PUBLISH with packet identifier 0'); // [MQTT-2.3.1-1]
    if (payload > this.limits.maxPayloadBytes) throw new Malformed(`payload of ${payload} bytes exceeds ${this.limits.maxPayloadBytes}`);
  }

  private checkTopicLimits(bytes: number, levels: number, what: string): void {
    if (bytes > this.limits.maxTopicLength) throw new Malformed(`${what} longer than ${this.limits.maxTopicLength} bytes`);
    if (levels > this.limits.maxTopicLevels) throw new Malformed(`${what} deeper than ${this.limits.maxTopicLevels} levels`);
  }

  private checkSubscribe(r: Reader): void {
    r.u16NonZero('SUBSCRIBE');
    if (r.pos === r.end) throw new Malformed('SUBSCRIBE without topic filters'); // [MQTT-3.8.3-3]
    while (r.pos < r.end) {
      this.topicFilter(r);
      if (r.byte() > 2) throw new Malformed('invalid requested QoS byte'); // [MQTT-3.8.3-4]
    }
  }

  private checkUnsubscribe(r: Reader): void {
    r.u16NonZero('UNSUBSCRIBE');
    if (r.pos === r.end) throw new Malformed('UNSUBSCRIBE without topic filters'); // [MQTT-3.10.3-2]
    while (r.pos < r.end) this.topicFilter(r);
  }
}

function remainingLength(data: Buffer, at: number): { length: number; bytes: number } | undefined {
  let length = 0;
  for (let i = 0; i < 4; i++) {
    if (at + i >= data.length) return undefined;
    const b = data[at + i];
    length += (b & 0x7f) * 128 ** i;
    if ((b & 0x80) === 0) return { length, bytes: i + 1 };
  }
  throw new Malformed('remaining length longer than 4 bytes');
}

/** Protocol name -> the level it speaks: MQTT 3.1 and 3.1.1 (the bridge bit 0x80 Mosquitto's bridges set is allowed). */
const SPOKEN: Record<string, number> = { MQIsdp: 3, MQTT: 4 };

function checkConnect(r: Reader): void {
  const protocol = r.string('protocol name').toString();
  const level = r.byte();
  const flags = r.byte();
  if (!(protocol in SPOKEN)) throw new Malformed(`unknown protocol name ${JSON.stringify(protocol)}`); // [MQTT-3.1.2-1]: may close
  // A level this broker does not speak for that name: CONNACK 0x01, then close [MQTT-3.1.2-2] (as Mosquitto 2).
  if ((level & 0x7f) !== SPOKEN[protocol]) throw new Malformed(`protocol ${protocol} level ${level} is not spoken here`, 0x01);
  if (flags & 0x01) throw new Malformed('reserved CONNECT flag set'); // [MQTT-3.1.2-3]
  const will = (flags & 0x04) !== 0;
  const willQos = (flags >> 3) & 3;
  if (willQos === 3) throw new Malformed('will QoS 3'); // [MQTT-3.1.2-14]
  if (!will && (willQos !== 0 || flags & 0x20)) throw new Malformed('will QoS or retain set without a will'); // [MQTT-3.1.2-13, -15]
  const username = (flags & 0x80) !== 0;
  const password = (flags & 0x40) !== 0;
  if (level === 4 && password && !username) throw new Malformed('password without user name'); // [MQTT-3.1.2-22]
  r.u16(); // keep alive
  const clientId = r.string('client id');
  if (will) {
    r.string('will topic');
    r.bytes();
  }
  if (username) r.string('user name');
  if (password) r.bytes();
  if (r.pos !== r.end) throw new Malformed('trailing bytes in CONNECT');
  const clean = (flags & 0x02) !== 0;
  if (clientId.length === 0 && !clean) throw new Malformed('empty client id with CleanSession=0', 0x02); // [MQTT-3.1.3-8]
}
