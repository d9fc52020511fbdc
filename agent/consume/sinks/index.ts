// Store-and-forward: one forwarder per configured sink, each a consumer of the durable log.
import type { Logger } from 'pino';
import type { ConsumerClock } from '../../ingest/clock-correction.js';
import type { SinkConfig } from './config.js';
import { Forwarder } from './forwarder.js';
import { createSink, liveLaneByDefault } from './registry.js';
import type { SchemaCatalog, SchemaInfo } from './sink.js';
import { CONSUMER_PREFIX, consumerOf, type LogSource, type SinkStatus } from './status.js';

export type { SinkConfig } from './config.js';
export type { LogSource, SinkState, SinkStatus } from './status.js';
export type { SchemaCatalog, SchemaInfo } from './sink.js';
export { consumerOf, formatStatus, offlineStatus, type LocalConsumerStatus } from './status.js';

type Source = LogSource & { consumers(): string[]; dropConsumer(name: string): Promise<void> };

export interface SyncOptions {
  agentId: string;
  sinks: SinkConfig[];
  log: Source;
  /** Closed rollup buckets, for sinks that take rollups (`rollups` in their config); `tags`: the series' tag names. */
  rollups?: { feed: Source; tags: string[] };
  schemas: SchemaCatalog;
  /** Corrects readings received while the clock was unsynchronised; sinks wait for it a while. */
  clock?: ConsumerClock;
  logger: Logger;
}

/** The schema catalog a rollup sink sees: a `rollup/<width>` record has its series' tags as tags, and its bucket start as time. */
function withRollups(schemas: SchemaCatalog, tags: string[]): SchemaCatalog {
  const info: SchemaInfo = { measurement: 'rollups', tags: ['bucket', ...tags], timestampField: 'start', fields: {} };
  return { byId: (id) => (id.startsWith('rollup/') ? info : schemas.byId(id)), list: () => schemas.list() };
}

export interface Sync {
  /** Per sink: state, lag, age of the oldest unsent reading, throughput, time to drain, last error. */
  status(): Promise<SinkStatus[]>;
  /** Cut a sink's backoff short; undefined if there is no such sink, else whether it was failing. */
  retry(name: string): boolean | undefined;
  stop(): Promise<void>;
}

/** Make each sink that takes readings known to the log, so that it gets what the log holds now. */
export async function registerSinks(sinks: SyncOptions['sinks'], log: SyncOptions['log']): Promise<void> {
  for (const sink of sinks) if (!sink.rollups) await log.registerConsumer(consumerOf(sink.name), sink.startAt);
}

export async function startSync(opts: SyncOptions): Promise<Sync> {
  // A sink taken out of the config (or now taking rollups) must not hold the log's chunks back forever.
  const configured = new Set(opts.sinks.filter((s) => !s.rollups).map((s) => consumerOf(s.name)));
  for (const consumer of opts.log.consumers()) {
    if (consumer.startsWith(CONSUMER_PREFIX) && !configured.has(consumer)) {
      await opts.log.dropConsumer(consumer);
      opts.logger.info({ consumer }, 'sink no longer configured; its log cursor was dropped');
    }
  }
  const forwarders: Forwarder[] = [];
  for (const config of opts.sinks) {
    const logger = opts.logger.child({ sink: config.name });
    const rollups = config.rollups ? opts.rollups : undefined;
    if (config.rollups && !rollups) throw new Error(`sinks: ${config.name} takes rollups, but rollups.enabled is false`);
    const schemas = rollups ? withRollups(opts.schemas, rollups.tags) : opts.schemas;
    const sink = await createSink(config, { agentId: opts.agentId, schemas, logger });
    // Rollups are few and small, and a bucket's time is its start (always "old"): no live lane for them.
    const live = !rollups && (config.live.enabled ?? liveLaneByDefault(config.type));
    forwarders.push(new Forwarder(config, sink, rollups?.feed ?? opts.log, logger, live, rollups ? undefined : opts.clock));
  }
  for (const f of forwarders) await f.start();
  return {
    status: () => Promise.all(forwarders.map((f) => f.status())),
    retry: (name) => forwarders[opts.sinks.findIndex((s) => s.name === name)]?.retryNow(),
    async stop() {
      await Promise.all(forwarders.map((f) => f.stop()));
    },
  };
}
