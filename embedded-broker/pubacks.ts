// QoS 1 acknowledgements the broker writes itself, so that reading a publisher's socket need not
// wait until its messages are safe: PUBACKs leave in the order the PUBLISHes came (MQTT-4.6.0-2),
// and all that became ready together leave in one socket write. A publisher that does not read its
// PUBACKs is not read either, until its socket drains.
import type { Writable } from 'node:stream';

/** Consecutive messages made safe by the same promise (one commit): one reaction for all of them. */
interface Group {
  safe: Promise<void> | undefined;
  state: 'waiting' | 'safe' | Error;
  messageIds: number[];
  onSent: (() => void)[];
}

export class PubackQueue {
  private queue: Group[] = [];
  private waiting = 0;
  private flushing = false;
  private failed = false;

  constructor(
    private readonly conn: Writable,
    private readonly on: {
      /** A message could not be made safe; the PUBACKs before it are sent, its own and later ones never. */
      fail(err: Error): void;
      /** The socket's write buffer is full: hold the sender until `drained`. */
      full(): void;
      drained(): void;
    },
  ) {}

  /** PUBACKs queued and not yet sent. */
  get length(): number {
    return this.waiting;
  }

  /** Send the PUBACK of `messageId` once `safe` settles (now, without it) and every earlier one has gone. */
  add(messageId: number, safe: Promise<void> | undefined, onSent?: () => void): void {
    this.waiting++;
    const last = this.queue.at(-1);
    const group = last && last.safe === safe && last.state === (safe ? 'waiting' : 'safe') ? last : this.open(safe);
    group.messageIds.push(messageId);
    if (onSent) group.onSent.push(onSent);
  }

  private open(safe: Promise<void> | undefined): Group {
    const group: Group = { safe, state: safe ? 'waiting' : 'safe', messageIds: [], onSent: [] };
    this.queue.push(group);
    const settle = (state: Group['state']) => {
      group.state = state;
      this.scheduleFlush();
    };
    if (safe) safe.then(() => settle('safe'), settle);
    else this.scheduleFlush();
    return group;
  }

  /** After the current microtasks: a commit settles many groups (and clients) at once. */
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
    if (next instanceof Error) this.on.fail(next);
  }

  private send(groups: Group[]): void {
    const count = groups.reduce((sum, g) => sum + g.messageIds.length, 0);
    if (count === 0) return;
    this.waiting -= count;
    const packets = Buffer.allocUnsafe(4 * count);
    let at = 0;
    for (const group of groups) {
      for (const id of group.messageIds) {
        packets[at] = 0x40; // PUBACK
        packets[at + 1] = 2; // remaining length
        packets.writeUInt16BE(id, at + 2);
        at += 4;
      }
    }
    if (this.conn.writable && !this.conn.write(packets)) {
      this.on.full();
      this.conn.once('drain', () => this.on.drained());
    }
    for (const group of groups) for (const onSent of group.onSent) onSent();
  }
}
