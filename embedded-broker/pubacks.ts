// QoS 1 acknowledgements the broker writes itself, so that reading a publisher's socket need not
// wait until its messages are safe: PUBACKs leave in the order the PUBLISHes came (MQTT-4.6.0-2),
// and all that became ready together leave in one socket write.
import type { Writable } from 'node:stream';

interface Pending {
  messageId: number;
  state: 'waiting' | 'safe' | Error;
  onSent?: () => void;
}

export class PubackQueue {
  private queue: Pending[] = [];
  private flushing = false;
  private failed = false;

  /** `fail`: a message could not be made safe; the PUBACKs before it are sent, its own and later ones never. */
  constructor(
    private readonly conn: Writable,
    private readonly fail: (err: Error) => void,
  ) {}

  /** PUBACKs queued and not yet sent. */
  get length(): number {
    return this.queue.length;
  }

  /** Send the PUBACK of `messageId` once `safe` settles (now, without it) and every earlier one has gone. */
  add(messageId: number, safe: Promise<void> | undefined, onSent?: () => void): void {
    const entry: Pending = { messageId, state: safe ? 'waiting' : 'safe', onSent };
    this.queue.push(entry);
    if (!safe) return this.scheduleFlush();
    const settle = (state: Pending['state']) => {
      entry.state = state;
      this.scheduleFlush();
    };
    safe.then(() => settle('safe'), settle);
  }

  /** After the current microtasks: a commit settles a whole batch of messages at once. */
  private scheduleFlush(): void {
    if (this.flushing) return;
    this.flushing = true;
    queueMicrotask(() => this.flush());
  }

  private flush(): void {
    this.flushing = false;
    if (this.failed) return;
    let n = 0;
    while (n < this.queue.length && this.queue[n].state === 'safe') n++;
    const sent = this.queue.splice(0, n);
    const next = this.queue[0]?.state;
    if (next instanceof Error) this.failed = true;
    this.send(sent);
    if (next instanceof Error) this.fail(next);
  }

  private send(sent: Pending[]): void {
    if (sent.length === 0) return;
    const n = sent.length;
    const packets = Buffer.allocUnsafe(4 * n);
    sent.forEach((entry, i) => {
      packets[4 * i] = 0x40; // PUBACK
      packets[4 * i + 1] = 2; // remaining length
      packets.writeUInt16BE(entry.messageId, 4 * i + 2);
    });
    if (this.conn.writable) this.conn.write(packets);
    for (const entry of sent) entry.onSent?.();
  }
}
