// One forwarder per sink, a named consumer of the durable log: gather a batch (records, bytes, age),
// send it, and move the cursor only once the sink confirmed. While a backlog drains, a live lane
// sends new readings beside it; when the backlog lane reaches where the live lane began, the two
// merge and the cursor jumps past what the live lane confirmed.
import type { Logger } from 'pino';
import type { ChunkText, TextBatch } from '../agent/buffer/chunk-text.js';
import type { RefusedReading } from '../agent/buffer/record.js';
import { settlesFirst } from '../agent/buffer/settles-first.js';
import { topicMatches } from '../embedded-broker/index.js';
import { Backoff } from '../agent/buffer/backoff.js';
import type { SinkConfig } from './config.js';
import { OutBatch, toOutRecord, type OutRecord } from './record.js';
import { SinkError, transient, type Encoded, type Sink } from './sink.js';
import { backlogOf, consumerOf } from './status.js';
import { sleep, Throttle } from './throttle.js';

/** What a forwarder needs of the durable log. */
export interface LogSource {
  registerConsumer(name: string): Promise<void>;
  cursor(name: string): number;
  readTexts(consumer: string, afterSeq: number, max: number): Promise<TextBatch | null>;
  waitFor(afterSeq: number, ms: number): Promise<void>;
  commit(consumer: string, seq: number): Promise<void>;
  readonly lastSeq: number;
  appendDeadLetter(refused: RefusedReading): Promise<void>;
}

/** `stopped`: reported from the log on disk while no agent runs. */
export type SinkState = 'ok' | 'retrying' | 'down' | 'stopped';

export interface SinkStatus {
  name: string;
  type: string;
  state: SinkState;
  /** When the sink entered this state (ISO 8601). */
  since: string;
  lastError?: { message: string; at: string };
  /** Readings not yet confirmed by the sink. */
  lagRecords: number;
  /** Age of the oldest reading not yet confirmed, ms; 0 when caught up. */
  oldestUnsentMs: number;
  /** Readings confirmed per second over the last minute. */
  recordsPerSec: number;
  /** lagRecords / recordsPerSec, seconds; null when nothing moves. */
  drainEtaSec: number | null;
  liveLane: boolean;
  sent: { records: number; requests: number; bytesIn: number; bytesOut: number };
  failures: number;
  deadLettered: number;
}

interface Gathered {
  records: OutBatch;
  /** Last seq looked at (filtered-out readings count as handled). */
  lastSeq: number;
}

interface Prepared extends Gathered {
  encoded: Encoded;
}

/** A batch on the wire, and whether the sink confirmed it (false: the lane stopped first). */
interface InFlight {
  batch: Prepared;
  done: Promise<boolean>;
}

class Lane {
  readonly stop = new AbortController();
  get stopped(): boolean {
    return this.stop.signal.aborted;
  }
}

interface LiveLane {
  lane: Lane;
  /** The live lane sends readings after this seq; the backlog lane stops here. */
  startSeq: number;
  /** Everything in (startSeq, confirmed] is confirmed. */
  confirmed: number;
  loop: Promise<void>;
}

const WINDOW_MS = 60_000;

export class Forwarder {
  readonly consumer: string;
  private state: Exclude<SinkState, 'stopped'> = 'ok';
  private since = new Date().toISOString();
  private lastError: SinkStatus['lastError'];
  private readonly counters = { records: 0, requests: 0, bytesIn: 0, bytesOut: 0, failures: 0, deadLettered: 0 };
  private readonly confirmations: { at: number; count: number }[] = [];
  private readonly throttle: Throttle;
  private readonly backlog = new Lane();
  /** Fired a little after stop(): requests still open are cut, their batches resent next start. */
  private readonly hardStop = new AbortController();
  private live: LiveLane | undefined;
  private readonly topicCache = new Map<string, boolean>();
  private readonly everyTopic: boolean;
  /** The batch being gathered while another is sent; stop() waits for it. */
  private prefetch: Promise<unknown> | undefined;
  private loop: Promise<void> | undefined;
  private readonly startedAt = Date.now();

  constructor(
    private readonly config: SinkConfig,
    private readonly sink: Sink,
    private readonly log: LogSource,
    private readonly logger: Logger,
    /** Whether new readings may overtake a draining backlog (config.live.enabled, or the sink type's default). */
    private readonly liveEnabled: boolean,
  ) {
    this.consumer = consumerOf(config.name);
    this.throttle = new Throttle(config.maxBytesPerSec);
    this.everyTopic = config.topics.includes('#') && config.excludeTopics.length === 0;
  }

  async start(): Promise<void> {
    await this.log.registerConsumer(this.consumer);
    this.loop = this.keepRunning();
  }

  /** An error of our own (the log failing a commit) restarts the lanes from the durable cursor. */
  private async keepRunning(): Promise<void> {
    while (!this.backlog.stopped) {
      try {
        await this.runBacklog();
      } catch (err) {
        this.logger.error({ sink: this.config.name, err: (err as Error).message }, 'forwarder failed; restarting from its cursor');
        if (this.live) {
          this.live.lane.stop.abort();
          await this.live.loop;
          this.live = undefined;
        }
        await sleep(1000, this.backlog.stop.signal);
      }
    }
  }

  async stop(graceMs = 2000): Promise<void> {
    this.backlog.stop.abort();
    this.live?.lane.stop.abort();
    const timer = setTimeout(() => this.hardStop.abort(), graceMs);
    await this.loop;
    await this.live?.loop;
    await this.prefetch?.catch(() => {});
    clearTimeout(timer);
    await this.sink.close();
  }

  // ---- lanes ----

  /**
   * Gather and encode the next batch while earlier ones are on the wire, so neither the sink nor
   * this process waits for the other; up to the sink's `concurrency` batches are sent at once, and
   * the cursor moves past each once it and every batch before it are confirmed. A batch gathered
   * before the live lane opened may reach past its start: those readings are sent twice, which the
   * sinks absorb.
   */
  private async runBacklog(): Promise<void> {
    const lane = this.backlog;
    const window = this.sink.concurrency ?? 1;
    const sending: InFlight[] = [];
    let cursor = this.log.cursor(this.consumer);
    let gathered = cursor;
    let next = this.prefetch = this.prepareNext(lane, gathered);
    try {
      while (!lane.stopped) {
        if (sending.length && (sending.length >= window || this.liveReached(gathered) || (await settlesFirst(sending[0].done, next)))) {
          const { batch, done } = sending.shift()!;
          if (!(await done)) break;
          cursor = batch.lastSeq;
          await this.log.commit(this.consumer, cursor);
          continue;
        }
        if (this.liveReached(cursor)) {
          await next;
          cursor = gathered = await this.mergeLive(cursor);
          next = this.prefetch = this.prepareNext(lane, gathered);
          continue;
        }
        const batch = await next;
        if (batch) {
          gathered = batch.lastSeq;
          this.maybeOpenLive(gathered, batch.records);
          sending.push({ batch, done: this.send(batch, lane) });
        }
        next = this.prefetch = this.prepareNext(lane, gathered);
      }
    } finally {
      await Promise.allSettled(sending.map((s) => s.done));
    }
  }

  /** The backlog lane has come to where the live lane began. */
  private liveReached(seq: number): boolean {
    return this.live !== undefined && seq >= this.live.startSeq;
  }

  private async prepareNext(lane: Lane, after: number): Promise<Prepared | null> {
    const gathered = await this.gather(lane, after, this.live && lane === this.backlog ? this.live.startSeq : Infinity);
    return gathered && this.prepare(gathered);
  }

  /** The backlog lane is sending old readings (up to `gathered`, newest in `batch`): send new ones beside it. */
  private maybeOpenLive(gathered: number, batch: OutBatch): void {
    if (!this.liveEnabled || this.live || !batch.length || this.backlog.stopped || this.state !== 'ok') return;
    const head = this.log.lastSeq;
    if (head <= gathered || Date.now() - batch.at(batch.length - 1).receivedAt < this.config.live.afterMs) return;
    const live: LiveLane = { lane: new Lane(), startSeq: head, confirmed: head, loop: Promise.resolve() };
    live.loop = this.runLive(live).catch((err) => this.logger.error({ err: (err as Error).message }, 'live lane stopped on an error'));
    this.live = live;
    this.logger.info({ sink: this.config.name, backlog: head - gathered }, 'backlog draining; live lane opened');
  }

  private async runLive(live: LiveLane): Promise<void> {
    while (!live.lane.stopped) {
      const batch = await this.prepareNext(live.lane, live.confirmed);
      if (!batch || !(await this.send(batch, live.lane))) continue;
      live.confirmed = batch.lastSeq;
    }
  }

  /** The backlog reached the live lane's start: one lane again, the cursor past what both confirmed. */
  private async mergeLive(cursor: number): Promise<number> {
    const live = this.live!;
    live.lane.stop.abort();
    await live.loop;
    this.live = undefined;
    const merged = Math.max(cursor, live.confirmed);
    await this.log.commit(this.consumer, merged);
    this.logger.info({ sink: this.config.name }, 'backlog drained; live lane merged');
    return merged;
  }

  // ---- batches ----

  /** Whether a reading (line k of a text) is for this sink; only topic filters make it read the line. */
  private wanted(text: ChunkText, k: number): boolean {
    if (this.everyTopic) return true;
    const { topic } = toOutRecord(text.line(k), '');
    let yes = this.topicCache.get(topic);
    if (yes === undefined) {
      yes = this.config.topics.some((f) => topicMatches(f, topic)) && !this.config.excludeTopics.some((f) => topicMatches(f, topic));
      if (this.topicCache.size > 10_000) this.topicCache.clear();
      this.topicCache.set(topic, yes);
    }
    return yes;
  }

  /**
   * Readings after `after` (up to `limit`) until the batch is full by records or bytes, or its first
   * reading has waited maxAgeMs. Null when none came within a while (the caller loops).
   */
  private async gather(lane: Lane, after: number, limit: number): Promise<Gathered | null> {
    const { maxRecords, maxBytes, maxAgeMs } = this.config.batch;
    const texts: ChunkText[] = [];
    const textOf: number[] = [];
    const lineOf: number[] = [];
    let agentId = '';
    let lastSeq = after;
    let scanned = 0;
    let bytes = 0;
    let firstAt = 0;
    while (!lane.stopped) {
      const room = Math.min(maxRecords - scanned, limit - lastSeq);
      const batch = room > 0 ? await this.log.readTexts(this.consumer, lastSeq, room) : null;
      if (batch) agentId = batch.agentId;
      scan: for (const text of batch?.texts ?? []) {
        const t = texts.push(text) - 1;
        for (let seq = Math.max(text.firstSeq, lastSeq + 1); seq <= Math.min(text.lastSeq, batch!.lastSeq); seq++) {
          const k = seq - text.firstSeq;
          const size = text.lineBytes(k);
          if (scanned > 0 && bytes + size > maxBytes) break scan;
          scanned++;
          bytes += size;
          lastSeq = seq;
          if (this.wanted(text, k)) {
            textOf.push(t);
            lineOf.push(k);
          }
        }
      }
      if (scanned && !firstAt) firstAt = performance.now();
      const full = scanned >= maxRecords || bytes >= maxBytes || lastSeq >= limit || (batch && batch.lastSeq > lastSeq);
      const waited = firstAt ? performance.now() - firstAt : 0;
      if (full || (scanned && waited >= maxAgeMs)) break;
      await this.waitForMore(lane, lastSeq, scanned ? maxAgeMs - waited : 1000);
      if (!scanned) return null;
    }
    return scanned ? { records: new OutBatch(agentId, texts, textOf, lineOf), lastSeq } : null;
  }

  /** Until a reading after `after` is durable, `ms` pass, or the lane stops. */
  private waitForMore(lane: Lane, after: number, ms: number): Promise<void> {
    const { signal } = lane.stop;
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const finish = () => {
        signal.removeEventListener('abort', finish);
        resolve();
      };
      signal.addEventListener('abort', finish, { once: true });
      void this.log.waitFor(after, ms).then(finish);
    });
  }

  // ---- sending ----

  /** Encode a batch; what the sink cannot represent goes to dead letters now. */
  private async prepare(batch: Gathered): Promise<Prepared> {
    const { encoded, refused } = batch.records.length ? await this.sink.encode(batch.records) : { encoded: { bytes: 0 }, refused: [] };
    await this.deadLetter(refused.map((r) => ({ record: batch.records.at(r.index), reason: r.reason })));
    return { ...batch, encoded };
  }

  /** Send until confirmed (true), or until the lane stops (false; the batch is resent later). */
  private async send(batch: Prepared, lane: Lane): Promise<boolean> {
    const { records, encoded } = batch;
    if (records.length === 0) return true;
    const backoff = new Backoff(this.config.retry.initialMs, this.config.retry.maxMs);
    while (!lane.stopped) {
      try {
        await this.sink.start();
        await this.throttle.take(encoded.bytes, lane.stop.signal);
        if (lane.stopped) break;
        const result = await this.withTimeout((signal) => this.sink.write(encoded, signal));
        await this.deadLetter((result.rejected ?? []).map((r) => ({ record: records.at(r.index), reason: r.reason })));
        this.confirmed(records, encoded.bytes);
        return true;
      } catch (err) {
        const e = err instanceof SinkError ? err : transient((err as Error).message);
        if (e.kind === 'invalid') return this.split(batch, e, lane);
        await sleep(this.failed(e, backoff), lane.stop.signal);
      }
    }
    return false;
  }

  /** The sink refused the batch without saying which reading: halve it until the culprits stand alone. */
  private async split(batch: Prepared, err: SinkError, lane: Lane): Promise<boolean> {
    const { records } = batch;
    if (records.length === 1) {
      await this.deadLetter([{ record: records.at(0), reason: err.message }]);
      return true;
    }
    const half = records.length >> 1;
    const part = async (rs: OutBatch) => this.send(await this.prepare({ records: rs, lastSeq: batch.lastSeq }), lane);
    return (await part(records.slice(0, half))) && part(records.slice(half));
  }

  private async withTimeout<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const signal = AbortSignal.any([AbortSignal.timeout(this.config.timeoutMs), this.hardStop.signal]);
    this.counters.requests++;
    return work(signal);
  }

  private confirmed(records: OutBatch, bytesOut: number): void {
    if (this.state !== 'ok') {
      this.logger.info({ sink: this.config.name, was: this.state }, 'sink ok again');
      this.since = new Date().toISOString();
    }
    this.state = 'ok';
    this.counters.records += records.length;
    this.counters.bytesIn += records.bytes;
    this.counters.bytesOut += bytesOut;
    const now = Date.now();
    this.confirmations.push({ at: now, count: records.length });
    while (this.confirmations[0].at < now - WINDOW_MS) this.confirmations.shift();
  }

  /** Record the failure; the wait before the next try. A `down` sink is retried rarely, never in a hot loop. */
  private failed(err: SinkError, backoff: Backoff): number {
    this.counters.failures++;
    const next = err.kind === 'down' ? 'down' : 'retrying';
    const changed = next !== this.state || err.message !== this.lastError?.message;
    if (next !== this.state) this.since = new Date().toISOString();
    this.state = next;
    this.lastError = { message: err.message, at: new Date().toISOString() };
    const waitMs = next === 'down' ? Math.round(this.config.retry.downMs * (0.9 + 0.2 * Math.random())) : (err.retryAfterMs ?? backoff.next());
    if (changed) this.logger[next === 'down' ? 'error' : 'warn']({ sink: this.config.name, state: next, err: err.message, retryInMs: waitMs }, `sink ${next}`);
    return waitMs;
  }

  private async deadLetter(items: { record: OutRecord; reason: string }[]): Promise<void> {
    for (const { record, reason } of items) {
      this.counters.deadLettered++;
      this.logger.warn({ sink: this.config.name, seq: record.seq, topic: record.topic, reason }, 'sink refused a reading; dead-lettered');
      await this.log.appendDeadLetter({
        time: Date.now(),
        topic: record.topic,
        clientId: record.clientId,
        payload: Buffer.from(record.payloadJson),
        reasons: [{ path: '', message: reason }],
        sink: this.config.name,
        consumer: this.consumer,
        seq: record.seq,
      });
    }
  }

  // ---- status ----

  async status(): Promise<SinkStatus> {
    const { lagRecords, oldestUnsentMs } = await backlogOf(this.log, this.consumer, this.live ? this.live.confirmed - this.live.startSeq : 0);
    const now = Date.now();
    const windowMs = Math.min(WINDOW_MS, now - this.startedAt);
    const recent = this.confirmations.filter((c) => c.at >= now - WINDOW_MS).reduce((n, c) => n + c.count, 0);
    const recordsPerSec = windowMs > 0 ? (recent * 1000) / windowMs : 0;
    return {
      name: this.config.name,
      type: this.config.type,
      state: this.state,
      since: this.since,
      lastError: this.lastError,
      lagRecords,
      oldestUnsentMs,
      recordsPerSec: Math.round(recordsPerSec * 10) / 10,
      drainEtaSec: lagRecords === 0 ? 0 : recordsPerSec > 0 ? Math.ceil(lagRecords / recordsPerSec) : null,
      liveLane: this.live !== undefined,
      sent: { records: this.counters.records, requests: this.counters.requests, bytesIn: this.counters.bytesIn, bytesOut: this.counters.bytesOut },
      failures: this.counters.failures,
      deadLettered: this.counters.deadLettered,
    };
  }
}
