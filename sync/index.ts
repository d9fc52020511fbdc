// Store-and-forward: one forwarder per configured sink, each a consumer of the durable log.
import type { Logger } from 'pino';
import type { SinkConfig } from './config.js';
import { Forwarder } from './forwarder.js';
import { createSink, liveLaneByDefault } from './registry.js';
import type { SchemaCatalog } from './sink.js';
import { CONSUMER_PREFIX, consumerOf, type LogSource, type SinkStatus } from './status.js';

export type { SinkConfig } from './config.js';
export type { LogSource, SinkState, SinkStatus } from './status.js';
export type { SchemaCatalog, SchemaInfo } from './sink.js';
export { formatStatus, offlineStatus, type LocalConsumerStatus } from './status.js';

export interface SyncOptions {
  agentId: string;
  sinks: SinkConfig[];
  log: LogSource & { consumers(): string[]; dropConsumer(name: string): Promise<void> };
  schemas: SchemaCatalog;
  logger: Logger;
}

export interface Sync {
  /** Per sink: state, lag, age of the oldest unsent reading, throughput, time to drain, last error. */
  status(): Promise<SinkStatus[]>;
  stop(): Promise<void>;
}

export async function startSync(opts: SyncOptions): Promise<Sync> {
  // A sink taken out of the config must not hold the log's chunks back forever.
  const configured = new Set(opts.sinks.map((s) => consumerOf(s.name)));
  for (const consumer of opts.log.consumers()) {
    if (consumer.startsWith(CONSUMER_PREFIX) && !configured.has(consumer)) {
      await opts.log.dropConsumer(consumer);
      opts.logger.info({ consumer }, 'sink no longer configured; its log cursor was dropped');
    }
  }
  const forwarders: Forwarder[] = [];
  for (const config of opts.sinks) {
    const logger = opts.logger.child({ sink: config.name });
    const sink = await createSink(config, { agentId: opts.agentId, schemas: opts.schemas, logger });
    forwarders.push(new Forwarder(config, sink, opts.log, logger, config.live.enabled ?? liveLaneByDefault(config.type)));
  }
  for (const f of forwarders) await f.start();
  return {
    status: () => Promise.all(forwarders.map((f) => f.status())),
    async stop() {
      await Promise.all(forwarders.map((f) => f.stop()));
    },
  };
}
