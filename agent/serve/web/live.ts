// Readings as they are committed, to the clients that asked for their topics (WebSocket /ws,
// Server-Sent Events /api/stream). The hub listens to the log only while someone is subscribed.
// A client that cannot keep up is closed, never buffered without bound.
import { decodeRecord, splitRecord } from '../../log/index.js';
import { topicMatches } from '../../../mqtt-topic/topic.js';
import { fieldOf } from '../../consume/store/where.js';
import { Tally } from './tally.js';

export interface LiveClient {
  /** Topic filter -> the payload fields it wants (all when undefined). */
  readonly subscriptions: Map<string, string[] | undefined>;
  /** Bytes sent but not yet taken by the client. */
  buffered(): number;
  /**
   * The readings of one commit it asked for, as JSON texts, in order (sent together: one write, not
   * one each). Every client given all of a commit's readings whole is given the same array.
   */
  send(readings: readonly string[]): void;
  /** Close it for falling behind. */
  tooSlow(bufferedBytes: number): void;
}

export interface Tappable {
  tap(listener: (lines: string[]) => void): () => void;
}

export class LiveHub {
  /** Each client and whom it serves (a user or an API key). */
  private readonly clients = new Map<LiveClient, string>();
  private readonly perOwner = new Tally();
  private untap: (() => void) | undefined;
  /** Clients closed for falling behind, since start. */
  slowClosed = 0;

  constructor(
    private readonly log: Tappable,
    private readonly agentId: string,
    private readonly limits: { maxClients: number; maxPerOwner: number; maxBufferedBytes: number },
  ) {}

  get size(): number {
    return this.clients.size;
  }

  /**
   * Why a new client of `owner` (a user or an API key) is refused: too many in all, or too many of
   * its own (one viewer cannot take every slot); undefined when it was added.
   */
  add(client: LiveClient, owner: string): 'too many live clients' | 'too many live clients of yours' | undefined {
    if (this.clients.size >= this.limits.maxClients) return 'too many live clients';
    if (this.perOwner.of(owner) >= this.limits.maxPerOwner) return 'too many live clients of yours';
    this.clients.set(client, owner);
    this.perOwner.add(owner);
    this.untap ??= this.log.tap((lines) => this.deliver(lines));
    return undefined;
  }

  remove(client: LiveClient): void {
    const owner = this.clients.get(client);
    if (owner === undefined) return;
    this.clients.delete(client);
    this.perOwner.remove(owner);
    if (this.clients.size === 0 && this.untap) {
      this.untap();
      this.untap = undefined;
    }
  }

  private deliver(lines: string[]): void {
    const keeping = this.keepUp();
    if (!keeping.length) return;
    const out = new Map<LiveClient, string[]>();
    // Clients given every reading whole are given this one array: they may make its wire form once.
    const everything: string[] = [];
    const partly = new Set<LiveClient>();
    lines.forEach((line, i) => {
      const { head } = splitRecord(line);
      let record: ReturnType<typeof decodeRecord> | undefined;
      let whole: string | undefined; // the text of clients that want every field: made once
      for (const client of keeping) {
        const fields = wanted(client, head.topic);
        if (fields !== undefined) partly.add(client);
        if (fields === null) continue;
        record ??= decodeRecord(line, this.agentId);
        const text = fields
          ? JSON.stringify({ ...record, payload: Object.fromEntries(fields.map((f) => [f, fieldOf(record!.payload, f) ?? null])) })
          : (whole ??= JSON.stringify(record));
        const texts = out.get(client);
        if (texts) texts.push(text);
        else out.set(client, [text]);
      }
      if (whole !== undefined) everything[i] = whole;
    });
    for (const [client, texts] of out) client.send(partly.has(client) ? texts : everything);
  }

  /** The clients keeping up; those past maxBufferedBytes are closed. */
  private keepUp(): LiveClient[] {
    return [...this.clients.keys()].filter((client) => {
      const buffered = client.buffered();
      if (buffered <= this.limits.maxBufferedBytes) return true;
      this.slowClosed++;
      this.remove(client);
      client.tooSlow(buffered);
      return false;
    });
  }
}

/** The fields a client wants of a topic: null if none of its filters match, undefined for all. */
function wanted(client: LiveClient, topic: string): string[] | undefined | null {
  let out: string[] | undefined | null = null;
  for (const [filter, fields] of client.subscriptions) {
    if (!topicMatches(filter, topic)) continue;
    if (!fields) return undefined;
    out = [...new Set([...(out ?? []), ...fields])];
  }
  return out;
}
