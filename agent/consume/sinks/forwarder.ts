// One forwarder per sink: what is the sink's own beside the buffer's consumer engine, which gathers,
// keeps batches in flight, moves the cursor in order and meets faults. Here: which readings the sink
// takes (topic filters, a byte cap), encoding, sending (bandwidth cap, timeout), and the live lane:
// while a backlog drains, new readings go beside it; when the backlog reaches where the live lane
// began, the two merge and the cursor jumps past what the live lane confirmed.
import { type ChunkText, receivedPayload, type RefusedReading } from '../../log/index.js';
import type { Logger } from 'pino';
import { ConsumerEngine, isGone, type Delivery } from '../engine.js';
import { RecordFault } from '../../lib/faults.js';
import { withDeadline } from '../../lib/sleep.js';
import type { ConsumerClock } from '../../ingest/clock-correction.js';
import { topicMatches } from '../../../mqtt-topic/topic.js';
import type { SinkConfig } from './config.js';
import { OutBatch, toOutRecord, type OutRecord } from './record.js';
import { SinkError, transient, type Encoded, type Sink } from './sink.js';
import { backlogOf, consumerOf, type LogSource, type SinkStatus } from './status.js';
import { Throttle } from './throttle.js';

/** A batch as the engine carries it for a sink: the readings, encoded. */
interface Prepared {
  records: OutBatch;
  /** Last seq looked at (filtered-out readings count as handled). */
  lastSeq: number;
  count: number;
  encoded: Encoded;
}

interface LiveLane {
  stop: AbortController;
  /** The live lane sends readings after this seq; the backlog lane stops here. */
  startSeq: number;
  /** Everything in (startSeq, confirmed] is confirmed. */
  confirmed: number;
  loop: Promise<void>;
}

const WINDOW_MS = 60_000;

export class Forwarder {
  readonly consumer: string;
  private readonly engine: ConsumerEngine<Prepared>;
  private readonly counters = { records: 0, requests: 0, bytesIn: 0, bytesOut: 0, deadLettered: 0 };
  private readonly confirmations: { at: number; count: number }[] = [];
  /** Records a second the sink took while sent to (measureCapacity); undefined until it has taken some. */
  private capacityPerSec: number | undefined;
  private readonly throttle: Throttle;
  /** Fired a little after stop(): requests still open are cut, their batches resent next start. */
  private readonly hardStop = new AbortController();
  private live: LiveLane | undefined;
  private readonly topicCache = new Map<string, boolean>();
  private readonly everyTopic: boolean;
  /** A rollup sink's bucket widths, as the schema ids of its records (the feed holds every width). */
  private readonly rollupSchemas: Set<string> | undefined;
  private readonly startedAt = Date.now();

  constructor(
    private readonly config: SinkConfig,
    private readonly sink: Sink,
    private readonly log: LogSource,
    private readonly logger: Logger,
    /** Whether new readings may overtake a draining backlog (config.live.enabled, or the sink type's default). */
    private readonly liveEnabled: boolean,
    /** Readings received while the clock was unsynchronised go out with corrected times, so the sink waits for a sync (a while). */
    private readonly clock?: ConsumerClock,
  ) {
    this.consumer = consumerOf(config.name);
    this.throttle = new Throttle(config.maxBytesPerSec);
    this.rollupSchemas = config.rollups && new Set(config.rollups.map((w) => `rollup/${w}`));
    this.everyTopic = config.topics.includes('#') && config.excludeTopics.length === 0 && !this.rollupSchemas;
    const { batch, retry } = config;
    this.engine = new ConsumerEngine(
      log,
      this.delivery(),
      {
        name: this.consumer,
        maxRecords: batch.maxRecords,
        maxAgeMs: batch.maxAgeMs,
        window: sink.concurrency ?? 1,
        retry,
        logger,
        hold: clock && (() => clock.holding()),
        startAt: config.startAt,
      },
      { limit: () => this.live?.startSeq ?? Infinity, reached: (cursor) => this.mergeLive(cursor), gathered: (b) => this.maybeOpenLive(b) },
    );
  }

  start(): Promise<void> {
    return this.engine.start();
  }

  /** Try again now instead of after the current backoff; false if the sink was not failing. */
  retryNow(): boolean {
    return this.engine.retryNow();
  }

  async stop(graceMs = 2000): Promise<void> {
    this.live?.stop.abort();
    const timer = setTimeout(() => this.hardStop.abort(), graceMs);
    await this.engine.stop();
    await this.live?.loop;
    clearTimeout(timer);
    await this.sink.close();
  }

  // ---- what the engine does with this sink ----

  private delivery(): Delivery<Prepared> {
    return {
      read: (after, max, limit) => this.read(after, max, limit),
      write: (batch, signal) => this.write(batch, signal),
      split: async ({ records, lastSeq }) => {
        const half = records.length >> 1;
        return [await this.prepare(records.slice(0, half), lastSeq), await this.prepare(records.slice(half), lastSeq)];
      },
      refused: ({ records }) => this.refused(records.at(0), ''),
      failure: (err, backoffMs) => {
        const e = err instanceof SinkError ? err : transient(err.message);
        // A `down` sink waits for a person: retried rarely, never in a hot loop.
        if (e.kind === 'down') return { state: 'down', waitMs: Math.round(this.config.retry.downMs * (0.9 + 0.2 * Math.random())) };
        return { state: 'retrying', waitMs: e.retryAfterMs ?? backoffMs };
      },
    };
  }

  /** Whether a reading (line k of a text) is for this sink; only topic filters make it read the line. */
  private wanted(text: ChunkText, k: number): boolean {
    if (this.everyTopic) return true;
    const { topic, schema } = toOutRecord(text.line(k), '');
    if (this.rollupSchemas && !this.rollupSchemas.has(schema ?? '')) return false;
    let yes = this.topicCache.get(topic);
    if (yes === undefined) {
      yes = this.config.topics.some((f) => topicMatches(f, topic)) && !this.config.excludeTopics.some((f) => topicMatches(f, topic));
      if (this.topicCache.size > 10_000) this.topicCache.clear();
      this.topicCache.set(topic, yes);
    }
    return yes;
  }

  /** Durable readings after `after` (none past `limit`), up to `max` or batch.maxBytes, filtered and encoded. */
  private async read(after: number, max: number, limit: number): Promise<Prepared | null> {
    const batch = await this.log.readTexts(this.consumer, after, Math.min(max, limit - after));
    if (!batch) return null;
    const texts: ChunkText[] = [];
    const textOf: number[] = [];
    const lineOf: number[] = [];
    let lastSeq = after;
    let bytes = 0;
    scan: for (const text of batch.texts) {
      const t = texts.push(text) - 1;
      for (let seq = Math.max(text.firstSeq, after + 1); seq <= Math.min(text.lastSeq, batch.lastSeq); seq++) {
        const k = seq - text.firstSeq;
        const size = text.lineBytes(k);
        if (lastSeq > after && bytes + size > this.config.batch.maxBytes) break scan;
        bytes += size;
        lastSeq = seq;
        if (this.wanted(text, k)) {
          textOf.push(t);
          lineOf.push(k);
        }
      }
    }
    return this.prepare(new OutBatch(batch.agentId, texts, textOf, lineOf, this.clock?.offsets()), lastSeq);
  }

  /** Encode a batch; what the sink cannot represent goes to dead letters now. */
  private async prepare(records: OutBatch, lastSeq: number): Promise<Prepared> {
    const { encoded, refused } = records.length ? await this.sink.encode(records) : { encoded: { bytes: 0 }, refused: [] };
    await this.deadLetter(refused.map((r) => this.refused(records.at(r.index), r.reason)));
    return { records, lastSeq, count: records.length, encoded };
  }

  /** Send a batch once: confirmed, or a SinkError (a refusal the sink cannot pin on a reading becomes a RecordFault). */
  private async write({ records, encoded }: Prepared, laneSignal: AbortSignal): Promise<void> {
    try {
      await this.sink.start();
      await this.throttle.take(encoded.bytes, laneSignal);
      if (laneSignal.aborted) throw transient('stopped');
      this.counters.requests++;
      const started = performance.now();
      const result = await withDeadline(this.config.timeoutMs, this.hardStop.signal, (signal) => this.sink.write(encoded, signal));
      this.measureCapacity(records.length, performance.now() - started);
      await this.deadLetter((result.rejected ?? []).map((r) => this.refused(records.at(r.index), r.reason)));
      this.confirmed(records, encoded.bytes);
    } catch (err) {
      if (err instanceof SinkError && err.kind === 'invalid') throw new RecordFault(err.message);
      throw err;
    }
  }

  /**
   * What the sink takes per second while it is sent to back to back: the records of a request over
   * its time (a moving average). A backlog drains at about this, not at the rate readings came in
   * before an outage, which is all the recent throughput shows.
   */
  private measureCapacity(records: number, ms: number): void {
    if (records === 0 || ms <= 0) return;
    const rate = (records * 1000) / ms;
    this.capacityPerSec = this.capacityPerSec === undefined ? rate : 0.8 * this.capacityPerSec + 0.2 * rate;
  }

  private confirmed(records: OutBatch, bytesOut: number): void {
    this.counters.records += records.length;
    this.counters.bytesIn += records.bytes;
    this.counters.bytesOut += bytesOut;
    const now = Date.now();
    this.confirmations.push({ at: now, count: records.length });
    while (this.confirmations[0].at < now - WINDOW_MS) this.confirmations.shift();
  }

  private refused(record: OutRecord, reason: string): RefusedReading {
    return {
      time: Date.now(),
      topic: record.topic,
      clientId: record.clientId,
      payload: receivedPayload(record, record.payloadJson),
      reasons: [{ path: '', message: reason }],
      sink: this.config.name,
      consumer: this.consumer,
      seq: record.seq,
    };
  }

  /** Readings the sink refused one by one (it said which): dead-lettered as the engine's isolated ones are. */
  private async deadLetter(refused: RefusedReading[]): Promise<void> {
    for (const r of refused) {
      this.counters.deadLettered++;
      this.logger.warn(
        { sink: this.config.name, seq: r.seq, topic: r.topic, reason: r.reasons[0].message },
        'sink refused a reading; dead-lettered',
      );
      await this.log.appendDeadLetter(r);
    }
  }

  // ---- the live lane ----

  /** The backlog lane is sending old readings (up to `batch`): send new ones beside it. */
  private maybeOpenLive(batch: Prepared): void {
    const { records } = batch;
    if (!this.liveEnabled || this.live || !records.length || this.engine.signal.aborted || this.engine.state !== 'ok') return;
    const head = this.log.lastSeq;
    if (head <= batch.lastSeq || Date.now() - records.at(records.length - 1).receivedAt < this.config.live.afterMs) return;
    const live: LiveLane = { stop: new AbortController(), startSeq: head, confirmed: head, loop: Promise.resolve() };
    live.loop = this.runLive(live).catch((err) => this.logger.error({ err: (err as Error).message }, 'live lane stopped on an error'));
    this.live = live;
    this.logger.info({ sink: this.config.name, backlog: head - batch.lastSeq }, 'backlog draining; live lane opened');
  }

  private async runLive(live: LiveLane): Promise<void> {
    const { signal } = live.stop;
    while (!signal.aborted) {
      const batch = await this.engine.gather(live.confirmed, Infinity, signal);
      if (!batch || (!isGone(batch) && !(await this.engine.deliver(batch, signal)))) continue;
      live.confirmed = batch.lastSeq;
    }
  }

  /** The backlog reached the live lane's start: one lane again, going on after what both confirmed. */
  private async mergeLive(cursor: number): Promise<number> {
    const live = this.live!;
    live.stop.abort();
    await live.loop;
    this.live = undefined;
    this.logger.info({ sink: this.config.name }, 'backlog drained; live lane merged');
    return Math.max(cursor, live.confirmed);
  }

  // ---- status ----

  async status(): Promise<SinkStatus> {
    const engine = this.engine.status();
    const { lagRecords, oldestUnsentMs } = await backlogOf(
      this.log,
      this.consumer,
      this.live ? this.live.confirmed - this.live.startSeq : 0,
    );
    const now = Date.now();
    const windowMs = Math.min(WINDOW_MS, now - this.startedAt);
    const recent = this.confirmations.filter((c) => c.at >= now - WINDOW_MS).reduce((n, c) => n + c.count, 0);
    const recordsPerSec = windowMs > 0 ? (recent * 1000) / windowMs : 0;
    return {
      name: this.config.name,
      type: this.config.type,
      state: engine.state,
      since: engine.since,
      lastError: engine.lastError,
      lagRecords,
      oldestUnsentMs,
      recordsPerSec: Math.round(recordsPerSec * 10) / 10,
      drainEtaSec: lagRecords === 0 ? 0 : drainEta(lagRecords, recordsPerSec, this.capacityPerSec),
      liveLane: this.live !== undefined,
      waitingForClock: engine.waitingForClock,
      sent: {
        records: this.counters.records,
        requests: this.counters.requests,
        bytesIn: this.counters.bytesIn,
        bytesOut: this.counters.bytesOut,
      },
      failures: engine.failures,
      deadLettered: engine.deadLettered + this.counters.deadLettered,
      start: this.log.startOf?.(this.consumer) ?? null,
      dropped: this.log.droppedFor?.(this.consumer) ?? {},
      spins: engine.spins,
    };
  }
}

/** Seconds to send a backlog: at what the sink took when sent to (or the recent rate, if higher); null when never measured. */
function drainEta(lag: number, recentPerSec: number, capacityPerSec: number | undefined): number | null {
  const rate = Math.max(recentPerSec, capacityPerSec ?? 0);
  return rate > 0 ? Math.ceil(lag / rate) : null;
}
