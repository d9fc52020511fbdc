// Aedes persistence on LevelDB: every structure lives in memory (as in aedes-persistence's
// reference implementation) and is written behind, in order, to LevelDB; setup() loads it back.
// Methods settle once memory is updated, not when the disk write lands: Aedes acknowledges a
// publish before it enqueues it for offline sessions, and a slower enqueue lets a reconnecting
// client receive the same message both live and from its queue. Like Mosquitto's autosave, the
// session store is a restart aid; the ingest log is what makes an acknowledged reading durable.
import { Readable } from 'node:stream';
import { deserialize, serialize } from 'node:v8';
import { ClassicLevel } from 'classic-level';
import AedesPacket from 'aedes-packet';
import QlobberSub from 'qlobber/aedes/qlobber-sub.js';
import { topicMatches } from '../../mqtt-topic/topic.js';
import { WriteQueue, type Op } from './write-queue.js';

export interface StoredPacket {
  cmd?: string;
  topic: string;
  payload: Buffer | string;
  qos?: number;
  retain?: boolean;
  dup?: boolean;
  messageId?: number;
  brokerId?: string;
  brokerCounter?: number;
  clientId?: string;
  [key: string]: unknown;
}
interface ClientRef {
  id: string;
}
interface SubRecord {
  qos: number;
  rh?: number;
  rap?: boolean;
  nl?: boolean;
  subscriptionIdentifier?: number;
}
interface Subscription extends SubRecord {
  topic: string;
}
interface BrokerRef {
  id: string;
}
interface Outgoing {
  key: string;
  packet: StoredPacket;
}
interface Ownership {
  owner: string;
  seenAt: number;
}

/** A persistent session as the broker holds it. */
export interface StoredSession {
  clientId: string;
  /** The user it belongs to; '' for an anonymous client. */
  owner: string;
  /** When its client last connected or went away (ms since the epoch). */
  seenAt: number;
  subscriptions: number;
  /** Messages waiting for it. */
  queued: number;
}

export interface LevelPersistenceOptions {
  /** LevelDB directory. */
  path: string;
  /** Most stored messages per client (offline queue and unacknowledged); newer ones are dropped. */
  maxQueuedPerClient?: number;
  /** Called when a write to LevelDB fails (the in-memory state stays right). */
  onWriteError?: (err: Error) => void;
  /** Called for each message dropped because a client's queue was full. */
  onQueueFull?: (clientId: string) => void;
  /** Retained messages under these prefixes stay in memory only (e.g. $SYS, rewritten every few seconds). */
  volatileRetainedPrefixes?: string[];
  /** Encrypts every stored value (queued messages, retained payloads, wills) when encryption at rest is on. */
  sealer?: Sealer;
}

/** Authenticated encryption of a value, bound to its key. */
export interface Sealer {
  seal(plain: Buffer, key: string): Buffer;
  open(sealed: Buffer, key: string): Buffer;
}

/** aedes-packet's constructor: copies a packet into the shape aedes queues. */
const Packet = AedesPacket as unknown as new (p: StoredPacket) => StoredPacket;
const QLOBBER_OPTIONS = { wildcard_one: '+', wildcard_some: '#', separator: '/', match_empty_levels: true };

const plain = (p: StoredPacket): StoredPacket => ({ ...p });
const enc = (v: unknown) => serialize(v);

export class LevelPersistence {
  private readonly db: ClassicLevel<string, Uint8Array>;
  private readonly writes: WriteQueue;
  private retained = new Map<string, StoredPacket>();
  private subscriptions = new Map<string, Map<string, SubRecord>>();
  private outgoing = new Map<string, Outgoing[]>();
  private incoming = new Map<string, Map<number, StoredPacket>>();
  private wills = new Map<string, StoredPacket>();
  /** Client id -> the user its persistent session belongs to ('' for anonymous), and when its client was last seen. */
  private owners = new Map<string, Ownership>();
  private trie = new QlobberSub(QLOBBER_OPTIONS);
  private clientsCount = 0;
  private outgoingSeq = 0;
  private destroyed = false;
  private brokerRef: BrokerRef | undefined;

  constructor(private readonly opts: LevelPersistenceOptions) {
    // Everything is read once at setup and served from memory: LevelDB needs next to no cache.
    this.db = new ClassicLevel<string, Uint8Array>(opts.path, {
      valueEncoding: 'view',
      cacheSize: 512 * 1024,
      writeBufferSize: 1024 * 1024,
    });
    this.writes = new WriteQueue(this.db);
  }

  /** Queue operations for LevelDB without waiting for them. */
  private persist(ops: Op[]): void {
    const { sealer } = this.opts;
    const stored = sealer ? ops.map((op) => (op.type === 'put' ? { ...op, value: sealer.seal(Buffer.from(op.value), op.key) } : op)) : ops;
    this.writes.write(stored).catch((err: Error) => this.opts.onWriteError?.(err));
  }

  get broker(): BrokerRef | undefined {
    return this.brokerRef;
  }

  async setup(broker: BrokerRef): Promise<void> {
    this.brokerRef = broker;
    await this.db.open();
    for await (const [key, value] of this.db.iterator()) this.restore(key, deserialize(this.unseal(key, value)));
  }

  /** A stored value, opened; one written before encryption was configured is read as it is. */
  private unseal(key: string, value: Uint8Array): Uint8Array {
    const { sealer } = this.opts;
    if (!sealer) return value;
    try {
      return sealer.open(Buffer.from(value), key);
    } catch (err) {
      if (value[0] === 0xff) return value; // V8's serialization header: plain
      throw err;
    }
  }

  private restore(key: string, value: unknown): void {
    const kind = key.slice(0, 2);
    const rest = key.slice(2);
    if (kind === 'r!') this.retained.set(rest, value as StoredPacket);
    else if (kind === 'w!') this.wills.set(rest, value as StoredPacket);
    else if (kind === 'u!')
      this.owners.set(rest, typeof value === 'string' ? { owner: value, seenAt: Date.now() } : (value as Ownership)); // a string: from before seenAt was kept
    else if (kind === 's!') {
      const subs = new Map(value as [string, SubRecord][]);
      this.subscriptions.set(rest, subs);
      this.clientsCount++;
      for (const [topic, s] of subs)
        if (s.qos > 0) this.trie.add(topic, { clientId: rest, topic, qos: s.qos, rh: s.rh, rap: s.rap, nl: s.nl });
    } else if (kind === 'o!') {
      const cut = rest.lastIndexOf('!');
      const clientId = rest.slice(0, cut);
      this.outgoingSeq = Math.max(this.outgoingSeq, parseInt(rest.slice(cut + 1), 16));
      this.queueOf(clientId).push({ key, packet: new Packet(value as StoredPacket) });
    } else if (kind === 'i!') {
      const cut = rest.lastIndexOf('!');
      this.incomingOf(rest.slice(0, cut)).set(Number(rest.slice(cut + 1)), value as StoredPacket);
    }
  }

  // ---- session owners ----

  /** The user a client id's persistent session belongs to ('' for anonymous); undefined if none. */
  sessionOwner(clientId: string): string | undefined {
    return this.owners.get(clientId)?.owner;
  }

  /** Record (or, with undefined, forget) whose a client id's persistent session is; its client is seen now. */
  setSessionOwner(clientId: string, owner: string | undefined): void {
    if (owner === undefined) {
      if (!this.owners.delete(clientId)) return;
      this.persist([{ type: 'del', key: `u!${clientId}` }]);
    } else {
      this.saveOwnership(clientId, { owner, seenAt: Date.now() });
    }
  }

  /** The session's client connected or went away now: its expiry counts from here. */
  seen(clientId: string): void {
    const held = this.owners.get(clientId);
    if (held) this.saveOwnership(clientId, { ...held, seenAt: Date.now() });
  }

  private saveOwnership(clientId: string, o: Ownership): void {
    this.owners.set(clientId, o);
    this.persist([{ type: 'put', key: `u!${clientId}`, value: enc(o) }]);
  }

  /** Every persistent session with an owner on record. */
  persistentSessions(): StoredSession[] {
    return [...this.owners].map(([clientId, o]) => ({
      clientId,
      ...o,
      subscriptions: this.subscriptions.get(clientId)?.size ?? 0,
      queued: this.outgoing.get(clientId)?.length ?? 0,
    }));
  }

  /** Forget a session whole: its subscriptions, queued and half-received messages, will and owner. */
  endSession(clientId: string): void {
    const subs = this.subscriptions.get(clientId);
    if (subs) {
      for (const [topic, s] of subs) if (s.qos > 0) this.trie.remove(topic, { clientId, topic });
      this.subscriptions.delete(clientId);
      this.clientsCount--;
    }
    const ops: Op[] = [
      { type: 'del', key: `s!${clientId}` },
      { type: 'del', key: `w!${clientId}` },
      { type: 'del', key: `u!${clientId}` },
    ];
    for (const o of this.outgoing.get(clientId) ?? []) ops.push({ type: 'del', key: o.key });
    for (const id of this.incoming.get(clientId)?.keys() ?? []) ops.push({ type: 'del', key: `i!${clientId}!${id}` });
    this.outgoing.delete(clientId);
    this.incoming.delete(clientId);
    this.wills.delete(clientId);
    this.owners.delete(clientId);
    this.persist(ops);
  }

  // ---- retained ----

  async storeRetained(pkt: StoredPacket): Promise<void> {
    const packet = { ...pkt };
    const durable = !(this.opts.volatileRetainedPrefixes ?? []).some((p) => packet.topic.startsWith(p));
    if (packet.payload.length === 0) {
      this.retained.delete(packet.topic);
      if (durable) this.persist([{ type: 'del', key: `r!${packet.topic}` }]);
    } else {
      this.retained.set(packet.topic, packet);
      if (durable) this.persist([{ type: 'put', key: `r!${packet.topic}`, value: enc(plain(packet)) }]);
    }
  }

  createRetainedStream(pattern: string): Readable {
    return this.createRetainedStreamCombi([pattern]);
  }

  createRetainedStreamCombi(patterns: string[]): Readable {
    const retained = this.retained;
    function* matching() {
      for (const pattern of patterns) for (const [topic, packet] of retained) if (topicMatches(pattern, topic)) yield packet;
    }
    return Readable.from(matching());
  }

  // ---- subscriptions ----

  async addSubscriptions(client: ClientRef, subs: Subscription[]): Promise<void> {
    let stored = this.subscriptions.get(client.id);
    if (!stored) {
      stored = new Map();
      this.subscriptions.set(client.id, stored);
      this.clientsCount++;
    }
    for (const sub of subs) {
      const previous = stored.get(sub.topic);
      const record: SubRecord = { qos: sub.qos, rh: sub.rh, rap: sub.rap, nl: sub.nl };
      if (sub.subscriptionIdentifier !== undefined) record.subscriptionIdentifier = sub.subscriptionIdentifier;
      if (sub.qos > 0) {
        this.trie.add(sub.topic, { clientId: client.id, topic: sub.topic, qos: sub.qos, rh: sub.rh, rap: sub.rap, nl: sub.nl });
      } else if (previous && previous.qos > 0) {
        this.trie.remove(sub.topic, { clientId: client.id, topic: sub.topic });
      }
      stored.set(sub.topic, record);
    }
    this.saveSubscriptions(client.id);
  }

  async removeSubscriptions(client: ClientRef, topics: string[]): Promise<void> {
    const stored = this.subscriptions.get(client.id);
    if (!stored) return;
    for (const topic of topics) {
      const previous = stored.get(topic);
      if (previous === undefined) continue;
      if (previous.qos > 0) this.trie.remove(topic, { clientId: client.id, topic });
      stored.delete(topic);
    }
    if (stored.size === 0) {
      this.clientsCount--;
      this.subscriptions.delete(client.id);
    }
    this.saveSubscriptions(client.id);
  }

  private saveSubscriptions(clientId: string): void {
    const stored = this.subscriptions.get(clientId);
    const key = `s!${clientId}`;
    return this.persist([stored ? { type: 'put', key, value: enc([...stored]) } : { type: 'del', key }]);
  }

  async subscriptionsByClient(client: ClientRef): Promise<Subscription[]> {
    return [...(this.subscriptions.get(client.id) ?? [])].map(([topic, s]) => ({ topic, ...s }));
  }

  async countOffline(): Promise<{ subsCount: number; clientsCount: number }> {
    return { subsCount: this.trie.subscriptionsCount, clientsCount: this.clientsCount };
  }

  async subscriptionsByTopic(topic: string) {
    // Asked for every QoS 1/2 message; with no stored subscriptions (the usual edge case) skip the match.
    return this.subscriptions.size === 0 ? [] : this.trie.match(topic);
  }

  async cleanSubscriptions(client: ClientRef): Promise<void> {
    const stored = this.subscriptions.get(client.id);
    if (!stored) return;
    for (const [topic, s] of stored) if (s.qos > 0) this.trie.remove(topic, { clientId: client.id, topic });
    this.clientsCount--;
    this.subscriptions.delete(client.id);
    this.saveSubscriptions(client.id);
  }

  getClientList(topic: string): Readable {
    const subscriptions = this.subscriptions;
    function* clients() {
      for (const [clientId, topics] of subscriptions) if (topics.has(topic)) yield clientId;
    }
    return Readable.from(clients());
  }

  // ---- outgoing (messages for a client, queued or awaiting its acknowledgement) ----

  private queueOf(clientId: string): Outgoing[] {
    let queue = this.outgoing.get(clientId);
    if (!queue) this.outgoing.set(clientId, (queue = []));
    return queue;
  }

  private enqueueOne(clientId: string, packet: StoredPacket, ops: Op[]): void {
    const queue = this.queueOf(clientId);
    if (this.opts.maxQueuedPerClient !== undefined && queue.length >= this.opts.maxQueuedPerClient) {
      this.opts.onQueueFull?.(clientId);
      return;
    }
    const stored = new Packet(packet);
    const key = `o!${clientId}!${(++this.outgoingSeq).toString(16).padStart(13, '0')}`;
    queue.push({ key, packet: stored });
    ops.push({ type: 'put', key, value: enc(plain(stored)) });
  }

  async outgoingEnqueue(sub: { clientId: string }, packet: StoredPacket): Promise<void> {
    const ops: Op[] = [];
    this.enqueueOne(sub.clientId, packet, ops);
    this.persist(ops);
  }

  async outgoingEnqueueCombi(subs: { clientId: string }[], packet: StoredPacket): Promise<void> {
    const ops: Op[] = [];
    for (const sub of subs) this.enqueueOne(sub.clientId, packet, ops);
    this.persist(ops);
  }

  async outgoingUpdate(client: ClientRef, packet: StoredPacket): Promise<void> {
    const queue = this.queueOf(client.id);
    for (const entry of queue) {
      const stored = entry.packet;
      if (stored.brokerId === packet.brokerId) {
        if (stored.brokerCounter === packet.brokerCounter) {
          stored.messageId = packet.messageId;
          return this.persist([{ type: 'put', key: entry.key, value: enc(plain(stored)) }]);
        }
      } else if (stored.messageId === packet.messageId) {
        entry.packet = packet;
        return this.persist([{ type: 'put', key: entry.key, value: enc(plain(packet)) }]);
      }
    }
    // A PUBREC for a packet id we never sent: Aedes 1.2 answers it with PUBREL only if this resolves
    // (a throw disconnects the client). Mosquitto 2 answers it; so do we [MQTT-4.3.3], storing nothing.
    if (packet.cmd === 'pubrel') return;
    throw new Error('no such packet');
  }

  async outgoingClearMessageId(client: ClientRef, packet: { messageId?: number }): Promise<StoredPacket | undefined> {
    const queue = this.queueOf(client.id);
    const i = queue.findIndex((e) => e.packet.messageId === packet.messageId);
    if (i < 0) return undefined;
    const [entry] = queue.splice(i, 1);
    this.persist([{ type: 'del', key: entry.key }]);
    return entry.packet;
  }

  outgoingStream(client: ClientRef): Readable {
    return Readable.from((this.outgoing.get(client.id) ?? []).map((e) => e.packet));
  }

  // ---- incoming QoS 2 ----

  private incomingOf(clientId: string): Map<number, StoredPacket> {
    let store = this.incoming.get(clientId);
    if (!store) this.incoming.set(clientId, (store = new Map()));
    return store;
  }

  async incomingStorePacket(client: ClientRef, packet: StoredPacket): Promise<void> {
    const stored = new Packet(packet);
    stored.messageId = packet.messageId;
    this.incomingOf(client.id).set(packet.messageId as number, stored);
    this.persist([{ type: 'put', key: `i!${client.id}!${packet.messageId}`, value: enc(plain(stored)) }]);
  }

  async incomingGetPacket(client: ClientRef, packet: { messageId?: number }): Promise<StoredPacket> {
    const stored = this.incoming.get(client.id)?.get(packet.messageId as number);
    if (!stored) throw new Error('no such packet');
    return stored;
  }

  async incomingDelPacket(client: ClientRef, packet: { messageId?: number }): Promise<void> {
    const store = this.incoming.get(client.id);
    if (!store?.delete(packet.messageId as number)) throw new Error('no such packet');
    this.persist([{ type: 'del', key: `i!${client.id}!${packet.messageId}` }]);
  }

  async cleanIncoming(client: ClientRef): Promise<void> {
    const store = this.incoming.get(client.id);
    if (!store) return;
    this.incoming.delete(client.id);
    this.persist([...store.keys()].map((id) => ({ type: 'del', key: `i!${client.id}!${id}` }) as Op));
  }

  // ---- wills ----

  async putWill(client: ClientRef, packet: StoredPacket): Promise<void> {
    packet.brokerId = this.brokerRef?.id;
    packet.clientId = client.id;
    this.wills.set(client.id, packet);
    this.persist([{ type: 'put', key: `w!${client.id}`, value: enc(plain(packet)) }]);
  }

  async getWill(client: ClientRef): Promise<StoredPacket | undefined> {
    return this.wills.get(client.id);
  }

  async delWill(client: ClientRef): Promise<StoredPacket | undefined> {
    const will = this.wills.get(client.id);
    if (!this.wills.delete(client.id)) return undefined;
    this.persist([{ type: 'del', key: `w!${client.id}` }]);
    return will;
  }

  streamWill(brokers: Record<string, unknown> = {}): Readable {
    return Readable.from([...this.wills.values()].filter((w) => !brokers[w.brokerId as string]));
  }

  async destroy(): Promise<void> {
    if (this.destroyed) throw new Error('destroyed called twice!');
    this.destroyed = true;
    await this.writes.flushed();
    await this.db.close();
  }
}
