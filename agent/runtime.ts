// Wires the stages together: broker -> ingest (validate) -> durable log -> consumers (local store,
// sinks), and the web listeners. Each stage is known here only through its public interface.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startBroker, type BrokerOptions, type EmbeddedBroker, type PublishHook } from '../embedded-broker/index.js';
import { startConsumer, type Consumer, type ConsumerStatus } from './buffer/consumer.js';
import { readKeyFile } from './buffer/key.js';
import { DurableLog } from './buffer/log.js';
import { ConfigError } from './config/load.js';
import type { Config } from './config/schema.js';
import { startSync, type Sync } from '../sync/index.js';
import { controlSocketPath, startControlSocket } from './control/socket.js';
import { clockSyncProbe } from './health/clock.js';
import { createIngest, type IngestStats } from './ingest/pipeline.js';
import { SchemaRegistry } from './ingest/schemas.js';
import type { Logger } from './log.js';
import { defaultStorePath, openStore, type LocalStore } from './store/index.js';
import { UserStore, usersFilePath } from './users/store.js';
import { VERSION } from './version.js';
import { startWeb, type WebServer } from './web/server.js';

export interface Runtime {
  /** Listener name -> bound host:port (mqtt, mqtts, ws, wss, http, https). */
  listeners: Record<string, string>;
  broker: EmbeddedBroker;
  log: DurableLog;
  store: LocalStore | undefined;
  sync: Sync;
  /** Resolves once the local store holds everything durable up to seq. */
  storeCaughtUp(seq: number, timeoutMs?: number): Promise<boolean>;
  /** The local store's consumer: state, lag, dead letters; undefined without a store. */
  storeStatus(): ConsumerStatus | undefined;
  ingestStats: IngestStats;
  /** Re-read the schemas (SIGHUP); a broken file keeps its previous version. Returns the problems. */
  reloadSchemas(): string[];
  close(): Promise<void>;
}

/** Closes what was started, newest first, when a later stage fails to start. */
class Stack {
  private readonly closers: (() => Promise<void>)[] = [];
  push(close: () => Promise<void>): void {
    this.closers.push(close);
  }
  async closeAll(): Promise<void> {
    for (const close of this.closers.reverse()) await close();
  }
}

/** The embedded broker as the config describes it, handing accepted messages to `onPublish`. */
export function brokerOptions(config: Config, logger: Logger, onPublish?: PublishHook): BrokerOptions {
  const b = config.broker;
  return {
    version: VERSION,
    persistenceDir: join(config.agent.dataDir, 'broker'),
    mqtt: b.mqtt.enabled ? b.mqtt : undefined,
    mqtts: b.mqtts.cert && b.mqtts.key ? { ...b.mqtts, cert: b.mqtts.cert, key: b.mqtts.key } : undefined,
    allowAnonymous: b.allowAnonymous,
    acl: b.acl,
    users: new UserStore(usersFilePath(config)),
    limits: b.limits,
    sysIntervalSec: b.sysInterval,
    onPublish,
    log: logger.child({ stage: 'broker' }),
  };
}

/** The durable log as the config describes it (also opened by `sync status` while no agent runs). */
export function openLog(config: Config, logger: Logger): Promise<DurableLog> {
  const { agent, buffer, ingest: i } = config;
  return DurableLog.open({
    dir: join(agent.dataDir, 'log'),
    agentId: agent.id,
    maxDelayMs: buffer.maxDelayMs,
    maxRecords: buffer.maxRecords,
    encryptionKey: buffer.encryption.keyFile ? readKeyFile(buffer.encryption.keyFile) : undefined,
    deadLetters: i.deadLetters,
    log: logger.child({ stage: 'log' }),
  });
}

export async function startRuntime(config: Config, logger: Logger): Promise<Runtime> {
  const { broker: b, web: w, agent, ingest: i, store: s } = config;
  mkdirSync(agent.dataDir, { recursive: true });

  const schemas = new SchemaRegistry({ dir: i.schemaDir, inline: i.schemas, mode: i.mode });
  const schemaProblems = schemas.load();
  if (schemaProblems.length) throw new ConfigError(schemaProblems, 'reading schemas');

  const started = new Stack();
  try {
    const log = await openLog(config, logger);
    started.push(() => log.close());

    let store: LocalStore | undefined;
    let storeConsumer: Consumer | undefined;
    if (s.backend !== 'none') {
      const opened = await openStore(s.backend, s.path ?? defaultStorePath(s.backend, agent.dataDir));
      store = opened;
      started.push(() => opened.close());
      const consumer = await startConsumer(log, 'store', (records) => opened.write(records), { batch: s.batchSize, gatherMs: s.gatherMs, inFlight: opened.writesInFlight, logger: logger.child({ stage: 'store' }) });
      storeConsumer = consumer;
      started.push(() => consumer.stop());
    }

    const sync = await startSync({
      agentId: agent.id,
      sinks: config.sinks,
      log,
      schemas,
      logger: logger.child({ stage: 'sync' }),
    });
    started.push(() => sync.stop());

    const control = await startControlSocket(controlSocketPath(agent.dataDir), { '/sync/status': () => sync.status() }, logger);
    started.push(() => control.close());

    const ingest = createIngest({
      schemas,
      log,
      unmatched: i.unmatched,
      qos0Overflow: i.qos0Overflow,
      limits: i.limits,
      maxPendingBytes: config.buffer.maxPendingBytes,
      clockSynced: clockSyncProbe(),
    });

    const broker = await startBroker(brokerOptions(config, logger, ingest.hook));
    started.push(() => broker.close());

    const web: WebServer = await startWeb({
      http: w.http.enabled ? w.http : undefined,
      https: w.https.cert && w.https.key ? { ...w.https, cert: w.https.cert, key: w.https.key } : undefined,
      mqttWs: b.ws.enabled ? { path: b.ws.path, maxPayload: b.limits.maxPayloadBytes + 65536, handle: broker.handleStream } : undefined,
      log: logger.child({ stage: 'web' }),
    });
    started.push(() => web.close());

    return {
      listeners: { ...broker.listeners, ...web.listeners },
      broker,
      log,
      store,
      sync,
      storeCaughtUp: (seq, timeoutMs) => storeConsumer?.caughtUp(seq, timeoutMs) ?? Promise.resolve(false),
      storeStatus: () => storeConsumer?.status(),
      ingestStats: ingest.stats,
      reloadSchemas() {
        const problems = schemas.load();
        if (problems.length) logger.error({ problems }, 'schema reload: these files keep their previous version');
        logger.info({ schemas: schemas.list().map((x) => x.id) }, 'schemas reloaded');
        return problems;
      },
      // Stop taking readings first, then let the log commit what it holds, then the consumers.
      close: () => started.closeAll(),
    };
  } catch (err) {
    await started.closeAll();
    throw err;
  }
}
