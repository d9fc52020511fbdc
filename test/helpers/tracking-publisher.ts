// A QoS 1 publisher that remembers exactly which messages the broker acknowledged. It never
// resends: a message without a PUBACK is simply not counted as acknowledged.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { connect as rawConnect, publish } from './raw.js';

export class TrackingPublisher {
  readonly acked = new Set<string>();
  /** When each acknowledged message's PUBACK came (Date.now()). */
  readonly ackedAt = new Map<string, number>();
  private readonly inFlight = new Map<number, string>();
  private socket: net.Socket | undefined;
  private sent = 0;
  private stopped = false;
  private done!: () => void;
  readonly finished = new Promise<void>((r) => (this.done = r));

  constructor(
    private readonly name: string,
    private readonly topic: string,
    private readonly window = 20,
    /** Bytes of random text in each payload (`pad`): readings that neither lz4 nor SQLite make small. */
    private readonly padBytes = 0,
  ) {}

  start(port: number): void {
    const socket = net.connect(port, '127.0.0.1');
    this.socket = socket;
    let buf = Buffer.alloc(0);
    let connected = false;
    socket.on('error', () => {});
    socket.on('close', () => this.stop());
    socket.on('connect', () => socket.write(rawConnect({ clientId: `${this.name}-${process.pid}` })));
    socket.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf[1]) {
        const type = buf[0] >> 4;
        if (type === 2) connected = true;
        if (type === 4) {
          const id = buf.readUInt16BE(2);
          const key = this.inFlight.get(id);
          if (key) {
            this.acked.add(key);
            this.ackedAt.set(key, Date.now());
            this.inFlight.delete(id);
          }
        }
        buf = buf.subarray(2 + buf[1]);
      }
      if (connected) this.pump();
    });
  }

  private pump(): void {
    const chunks: Buffer[] = [];
    while (!this.stopped && this.inFlight.size < this.window) {
      const n = this.sent++;
      const id = (n % 65000) + 1;
      const key = `${this.name}:${n}`;
      this.inFlight.set(id, key);
      const payload = this.padBytes ? { key, v: n, pad: randomBytes(this.padBytes >> 1).toString('hex') } : { key, v: n };
      chunks.push(publish(this.topic, JSON.stringify(payload), 1, id));
    }
    if (chunks.length) this.socket?.write(Buffer.concat(chunks));
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.socket?.destroy();
    this.done();
  }
}
