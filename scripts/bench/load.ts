// A light MQTT load generator: raw sockets and pre-encoded packets, so the broker, not the
// generator, is what a run measures.
import net from 'node:net';
import mqttPacket from 'mqtt-packet';

export interface LoadOptions {
  port: number;
  publishers: number;
  messagesPerPublisher: number;
  qos: 0 | 1;
  /** Unacknowledged QoS 1 messages each publisher keeps in flight. */
  window: number;
  /** Steady total rate (messages/s) instead of as fast as possible (QoS 1 only). */
  ratePerSecond?: number;
  username?: string;
  password?: string;
  topic: (publisher: number) => string;
  payload: Buffer;
  /** Called once every publisher is connected and logged in, just before the timed part. */
  onConnected?: () => void;
}

export interface LoadResult {
  messages: number;
  seconds: number;
  perSecond: number;
  /** PUBACK latency per QoS 1 message, milliseconds. */
  latenciesMs: number[];
}

const generate = (packet: object) => mqttPacket.generate(packet as mqttPacket.Packet);

class PacketReader {
  private buf: Buffer = Buffer.alloc(0);
  constructor(private readonly onPacket: (type: number, body: Buffer) => void) {}
  push(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    let pos = 0;
    while (pos + 2 <= this.buf.length) {
      let len = 0,
        mul = 1,
        i = pos + 1;
      for (; i < this.buf.length; i++) {
        len += (this.buf[i] & 0x7f) * mul;
        mul *= 128;
        if ((this.buf[i] & 0x80) === 0) break;
      }
      if (i >= this.buf.length || i + 1 + len > this.buf.length) break;
      this.onPacket(this.buf[pos] >> 4, this.buf.subarray(i + 1, i + 1 + len));
      pos = i + 1 + len;
    }
    this.buf = this.buf.subarray(pos);
  }
}

export async function connectRaw(
  port: number,
  clientId: string,
  username?: string,
  password?: string,
): Promise<{ socket: net.Socket; reader: (fn: (type: number, body: Buffer) => void) => void }> {
  const socket = net.connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  let handler: (type: number, body: Buffer) => void = () => {};
  const reader = new PacketReader((t, b) => handler(t, b));
  socket.on('data', (d) => reader.push(d));
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.write(
        generate({
          cmd: 'connect',
          protocolId: 'MQTT',
          protocolVersion: 4,
          clientId,
          clean: true,
          keepalive: 60,
          username,
          password: password ? Buffer.from(password) : undefined,
        }),
      );
    });
    handler = (type, body) => {
      if (type !== 2) return reject(new Error(`expected CONNACK, got type ${type}`));
      if (body[1] !== 0) return reject(new Error(`CONNACK return code ${body[1]}`));
      resolve();
    };
  });
  return { socket, reader: (fn) => (handler = fn) };
}

type Connection = Awaited<ReturnType<typeof connectRaw>>;

async function runPublisher(i: number, { socket, reader }: Connection, opts: LoadOptions, latencies: number[]): Promise<void> {
  const topic = opts.topic(i);
  const n = opts.messagesPerPublisher;
  if (opts.qos === 0) {
    // QoS 0 burst, then one QoS 1 marker: its PUBACK means the broker has processed all before it.
    const one = generate({ cmd: 'publish', topic, payload: opts.payload, qos: 0, retain: false, dup: false });
    const batch = Buffer.concat(Array.from({ length: 100 }, () => one));
    for (let sent = 0; sent < n; sent += 100) {
      if (!socket.write(batch)) await new Promise((r) => socket.once('drain', r));
    }
    await new Promise<void>((resolve) => {
      reader((type) => type === 4 && resolve());
      socket.write(generate({ cmd: 'publish', topic, payload: opts.payload, qos: 1, messageId: 1, retain: false, dup: false }));
    });
  } else {
    const sentAt = new Float64Array(65536);
    let sent = 0,
      acked = 0;
    const perPublisher = opts.ratePerSecond ? opts.ratePerSecond / opts.publishers : 0;
    const started = performance.now();
    /** How many may have been sent by now: all of them, or as many as the pace allows. */
    const allowed = () => (perPublisher ? Math.min(n, Math.floor(((performance.now() - started) / 1000) * perPublisher)) : n);
    let pacer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      const pump = () => {
        const chunks: Buffer[] = [];
        const limit = allowed();
        while (sent < limit && sent - acked < opts.window) {
          const id = (sent % 65535) + 1;
          sentAt[id] = performance.now();
          chunks.push(generate({ cmd: 'publish', topic, payload: opts.payload, qos: 1, messageId: id, retain: false, dup: false }));
          sent++;
        }
        if (chunks.length) socket.write(Buffer.concat(chunks));
      };
      reader((type, body) => {
        if (type !== 4) return;
        latencies.push(performance.now() - sentAt[body.readUInt16BE(0)]);
        if (++acked === n) resolve();
        else pump();
      });
      if (perPublisher) pacer = setInterval(pump, 2);
      pump();
    });
    clearInterval(pacer);
  }
  socket.end(generate({ cmd: 'disconnect' }));
}

/** Connect every publisher first (authentication is not what this measures), then time the messages. */
export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const latenciesMs: number[] = [];
  const connections = await Promise.all(
    Array.from({ length: opts.publishers }, (_, i) => connectRaw(opts.port, `bench-${i}-${process.pid}`, opts.username, opts.password)),
  );
  opts.onConnected?.();
  const started = performance.now();
  await Promise.all(connections.map((c, i) => runPublisher(i, c, opts, latenciesMs)));
  const seconds = (performance.now() - started) / 1000;
  const messages = opts.publishers * opts.messagesPerPublisher;
  return { messages, seconds, perSecond: messages / seconds, latenciesMs };
}

/** A reading like a sensor sends: about 150 bytes of JSON. */
export function sensorPayload(): Buffer {
  return Buffer.from(
    JSON.stringify({
      ts: '2026-11-30T12:00:00.000Z',
      sensor: 'bme280-01',
      temperature: 21.53,
      humidity: 48.2,
      pressure: 1013.25,
      battery: 3.71,
      rssi: -67,
      fw: '1.4.2',
    }),
  );
}
