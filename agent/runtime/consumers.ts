// The log's consumers as the config describes them: the local store, the rollups and the sinks.
import type { Config } from '../config-schema.js';
import { startLocalConsumers, type LocalConsumers } from '../consume/local.js';
import { consumerOf, registerSinks, startSync, type Sync } from '../consume/sinks/index.js';
import type { Readiness } from '../health/readiness.js';
import type { Clock } from '../ingest/clock.js';
import type { SchemaRegistry } from '../ingest/schemas.js';
import type { Closers } from '../lib/closers.js';
import type { Logger } from '../lib/logger.js';
import type { DurableLog } from '../log/index.js';
import type { DiskPressure } from '../retention/pressure.js';
import { partKeys } from './at-rest.js';
import { openWhenDiskAllows } from './durable-log.js';

export interface ConsumerParts {
  log: DurableLog;
  disk: DiskPressure;
  clock: Clock;
  schemas: SchemaRegistry;
  readiness: Readiness;
}

/**
 * A sink new to this log is made known before the store and the rollups take what it holds, so
 * that it gets those readings too (the store may let their chunks go the moment it starts).
 */
export async function startConsumers(
  config: Config,
  p: ConsumerParts,
  logger: Logger,
  started: Closers,
): Promise<{ local: LocalConsumers; sync: Sync }> {
  await registerSinks(config.sinks, p.log);
  const local = await startLocalConsumers({
    dataDir: config.agent.dataDir,
    store: config.store,
    rollups: config.rollups,
    rollupSinks: {
      agentId: config.agent.id,
      consumers: Object.fromEntries(config.sinks.flatMap((x) => (x.rollups ? [[consumerOf(x.name), x.rollups]] : []))),
      deadLetter: (d) => p.log.appendDeadLetter(d),
    },
    key: partKeys(config),
    log: p.log,
    admit: (bytes) => p.disk.admit(bytes),
    clockHolding: () => p.clock.holding(),
    clockOffsets: () => p.clock.offsets(),
    open: (part, open) => openWhenDiskAllows(part, open, p.readiness, logger),
    logger,
  });
  started.push(() => local.stop());
  for (const part of [local.store, local.rollups]) {
    if (!part) continue;
    p.readiness.set(part.name, () => {
      const { state, since, lastError } = part.status();
      return { name: part.name, state, since, ...(lastError ? { lastError } : {}) };
    });
  }
  const feed = local.rollups?.target.feed;
  const sync = await startSync({
    agentId: config.agent.id,
    sinks: config.sinks,
    log: p.log,
    rollups: feed && { feed, tags: [...new Set(config.rollups.series.flatMap((x) => x.tags))] },
    schemas: p.schemas,
    clock: p.clock,
    logger: logger.child({ stage: 'sync' }),
  });
  started.push(() => sync.stop());
  p.readiness.set('sinks', async () =>
    (await sync.status()).map((x) => ({
      name: `sink:${x.name}`,
      state: x.state,
      since: x.since,
      ...(x.lastError ? { lastError: x.lastError } : {}),
    })),
  );
  return { local, sync };
}
