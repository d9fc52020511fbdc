// Raw MQTT bytes over a plain socket, for the protocol rules a well-behaved client library never breaks.
import net from 'node:net';

export const str = (s: string | Buffer) => {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
};

function varint(n: number): Buffer {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return Buffer.from(out);
}

export function packet(firstByte: number, ...body: Buffer[]): Buffer {
  const b = Buffer.concat(body);
  return Buffer.concat([Buffer.from([firstByte]), varint(b.length), b]);
}

export interface ConnectFields {
  clientId?: string | Buffer;
  clean?: boolean;
  flags?: number; // extra bits OR-ed into the connect flags
  will?: { topic: string | Buffer; payload: string; qos?: number };
  username?: string | Buffer;
  password?: string;
  /** Protocol name and level (default MQTT, 4). */
  protocol?: string;
  level?: number;
}

export function connect(f: ConnectFields = {}): Buffer {
  let flags = ((f.clean ?? true) ? 0x02 : 0) | (f.flags ?? 0);
  const parts = [str(f.clientId ?? 'raw-client')];
  if (f.will) {
    flags |= 0x04 | ((f.will.qos ?? 0) << 3);
    parts.push(str(f.will.topic), str(f.will.payload));
  }
  if (f.username !== undefined) {
    flags |= 0x80;
    parts.push(str(f.username));
  }
  if (f.password !== undefined) {
    flags |= 0x40;
    parts.push(str(f.password));
  }
  return packet(0x10, str(f.protocol ?? 'MQTT'), Buffer.from([f.level ?? 4, flags, 0, 60]), ...parts);
}

export const publish = (topic: string | Buffer, payload: string | Buffer, qos = 0, messageId = 1) =>
  packet(0x30 | (qos << 1), str(topic), qos > 0 ? Buffer.from([messageId >> 8, messageId & 0xff]) : Buffer.alloc(0), Buffer.from(payload));

export const subscribe = (filter: string | Buffer, qos = 0, messageId = 1) =>
  packet(0x82, Buffer.from([messageId >> 8, messageId & 0xff]), str(filter), Buffer.from([qos]));

export interface RawResult {
  /** Every byte the server sent. */
  received: Buffer;
  /** The server closed the connection within the wait. */
  closed: boolean;
}

/** Send packets one after another, then wait until the server closes or `ms` passes. */
export function exchange(port: number, packets: Buffer[], ms = 1500, gapMs = 50): Promise<RawResult> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let closed = false;
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', () => {});
    socket.on('close', () => {
      closed = true;
      finish();
    });
    socket.on('connect', async () => {
      for (const p of packets) {
        if (socket.destroyed) break;
        socket.write(p);
        await new Promise((r) => setTimeout(r, gapMs));
      }
    });
    const timer = setTimeout(finish, ms);
    function finish() {
      clearTimeout(timer);
      socket.destroy();
      resolve({ received: Buffer.concat(chunks), closed });
    }
  });
}

export const CONNACK_OK = Buffer.from([0x20, 0x02, 0x00, 0x00]);
