// Ingest and the embedded broker as the config describes them: the data path's entry.
import { join } from 'node:path';
import { startBroker, type BrokerOptions, type EmbeddedBroker, type LoginGuard, type PublishHook } from '../../embedded-broker/index.js';
import type { Config } from '../config-schema.js';
import { durationMs } from '../config/keys.js';
import type { SensorWatch } from '../health/sensors.js';
import type { Clock } from '../ingest/clock.js';
import { Ingest } from '../ingest/pipeline.js';
import type { SchemaRegistry } from '../ingest/schemas.js';
import type { Closers } from '../lib/closers.js';
import type { Logger } from '../lib/logger.js';
import type { DurableLog } from '../log/index.js';
import type { DiskPressure } from '../retention/pressure.js';
import { VERSION } from '../lib/version.js';
import { UserStore, usersFilePath } from '../users/store.js';
import { partKeys, sealer } from './at-rest.js';
import type { Served } from './web.js';

/** The broker's options, handing accepted messages to `onPublish` (ingest's hook). */
export function brokerOptions(
  config: Config,
  logger: Logger,
  onPublish?: PublishHook,
  shared?: { users: UserStore; loginGuard: LoginGuard },
): BrokerOptions {
  const b = config.broker;
  const key = partKeys(config)?.('broker');
  return {
    version: VERSION,
    persistenceDir: join(config.agent.dataDir, 'broker'),
    persistenceSealer: key && sealer(key),
    mqtt: b.mqtt.enabled ? b.mqtt : undefined,
    mqtts: b.mqtts.cert && b.mqtts.key ? { ...b.mqtts, cert: b.mqtts.cert, key: b.mqtts.key } : undefined,
    allowAnonymous: b.allowAnonymous,
    acl: b.acl,
    users: shared?.users ?? new UserStore(usersFilePath(config)),
    loginGuard: shared?.loginGuard,
    limits: b.limits,
    loginThrottle: b.loginThrottle,
    sysIntervalSec: b.sysInterval,
    persistentSessionExpiryMs: durationMs(b.persistentSessionExpiry),
    onPublish,
    logger: logger.child({ stage: 'broker' }),
  };
}

/** Ingest as the config describes it: each message the broker (or the API) takes is checked, then made durable. */
export function ingestFrom(
  config: Config,
  p: { schemas: SchemaRegistry; log: DurableLog; clock: Clock; disk: DiskPressure; sensors: SensorWatch },
): Ingest {
  const i = config.ingest;
  return new Ingest({
    schemas: p.schemas,
    log: p.log,
    unmatched: i.unmatched,
    qos0Overflow: i.qos0Overflow,
    limits: i.limits,
    maxPendingBytes: config.buffer.maxPendingBytes,
    clock: p.clock,
    admission: p.disk,
    watch: p.sensors.watching ? p.sensors : undefined,
  });
}

/** The broker, handing every accepted message to ingest; MQTT over WebSocket (the web listener's) reaches it from now. */
export async function startBrokerStage(
  config: Config,
  ingest: Ingest,
  web: { users: UserStore; loginGuard: LoginGuard },
  served: Served,
  logger: Logger,
  started: Closers,
): Promise<EmbeddedBroker> {
  const broker = await startBroker(brokerOptions(config, logger, ingest.hook, web));
  served.broker = broker;
  started.push(() => broker.close());
  return broker;
}
