// Wires the stages together: broker -> ingest (validate) -> durable log -> consumers (local store,
// sinks), and the web listeners. Each stage is known here only through its public interface.
import { type ChunkBatch, open, seal, readKeyFile, subkey, DurableLog, type RefusedReading } from './log/index.js';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  LoginGuard,
  startBroker,
  topicNameProblem,
  type BrokerOptions,
  type EmbeddedBroker,
  type PublishHook,
  type Sealer,
} from '../embedded-broker/index.js';
import { Backoff } from './lib/backoff.js';
import { ConsumerEngine, type EngineStatus } from './consume/engine.js';
import { describeDiskError, isDiskError } from './lib/faults.js';
import { ConfigError } from './config/load.js';

import { consumerOf, startSync, type Sync } from './consume/sinks/index.js';
import { controlSocketPath, startControlSocket } from './control/socket.js';
import { bootConfigRollback, stillShown } from './health/boot-config.js';
import { Clock, detectSyncSource, systemClock, type ClockSource } from './ingest/clock.js';
import { openDriver, startGpio, type GpioDriver, type GpioRunning } from './gpio/index.js';
import { diskWrites, writtenBytes, WriteRate, type DiskWrites } from './lib/disk-writes.js';
import { makePrivate, privateUmask } from './lib/private-files.js';
import { Readiness, statusOf } from './health/readiness.js';
import { startRetention, type Retention } from './retention/index.js';
import { DiskPressure } from './retention/pressure.js';
import { defaultRollupPath, openRollups, ROLLUP_CONSUMER, type Rollups } from './consume/rollups/index.js';
import { createIngest, type IngestStats } from './ingest/pipeline.js';
import { SchemaRegistry } from './ingest/schemas.js';
import { SchemaEditor } from './ingest/schema-editor.js';
import type { Logger } from './lib/logger.js';
import { defaultStorePath, openStore, STORE_CONSUMER, type LocalStore } from './consume/store/index.js';
import { chunkDelivery } from './consume/chunk-delivery.js';
import { ApiKeyStore, apiKeysPath } from './users/api-keys.js';
import { ensureAdmin } from './users/initial-admin.js';
import { UserStore, usersFilePath } from './users/store.js';
import { createMetrics, type MetricsSource } from './health/metrics.js';
import { findVcgencmd, SystemMonitor } from './health/system.js';
import { SensorWatch } from './health/sensors.js';
import { startAlerts } from './health/alert-wiring.js';
import { redact, type Config } from './config-schema.js';
import { planReload } from './config/reload.js';
import type { AgentApi } from './serve/web/api.js';
import { LiveHub } from './serve/web/live.js';
import { Sessions } from './serve/web/auth/sessions.js';
import { durationMs } from './config/keys.js';
import { VERSION } from './lib/version.js';
import { startWeb, type WebServer } from './serve/web/server.js';

export interface Runtime {
  /** Listener name -> bound host:port (mqtt, mqtts, ws, wss, http, https). */
  listeners: Record<string, string>;
  broker: EmbeddedBroker;
  log: DurableLog;
  store: LocalStore | undefined;
  rollups: Rollups | undefined;
  /** Free space against the watermarks, and what pressure made the agent give up. */
  disk: DiskPressure;
  sync: Sync;
  /** Resolves once the local store holds everything durable up to seq. */
  storeCaughtUp(seq: number, timeoutMs?: number): Promise<boolean>;
  /** The local store's consumer: state, lag, dead letters; undefined without a store. */
  storeStatus(): EngineStatus | undefined;
  /** Resolves once the rollups hold everything durable up to seq. */
  rollupsCaughtUp(seq: number, timeoutMs?: number): Promise<boolean>;
  ingestStats: IngestStats;
  /** Each part of the data path and its state; ready when all are ok. */
  readiness: Readiness;
  /** Deletes what the retention rules no longer keep, on their schedule. */
  retention: Retention;
  /** Bytes written to storage since start (SD-card wear), in all, by the store, and per reading. */
  diskWrites(): DiskWrites;
  /** Re-read the schemas (SIGHUP); a broken file keeps its previous version. Returns the problems. */
  reloadSchemas(): string[];
  /** How the agent is, in one line (systemd's STATUS=). */
  statusLine(): Promise<string>;
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

/**
 * Open a part whose disk may be full (the log, the store): retried with backoff while the error is
 * the disk's, reported as `refusing: <why>` meanwhile; any other error stops start-up.
 */
async function openWhenDiskAllows<T>(name: string, open: () => Promise<T>, readiness: Readiness, logger: Logger): Promise<T> {
  const backoff = new Backoff(250, 10_000);
  for (let said = ''; ;) {
    try {
      return await open();
    } catch (err) {
      if (!isDiskError(err)) throw err;
      const why = describeDiskError(err);
      if (why !== said) logger.error({ part: name, err: why }, `cannot open the ${name}; retrying until the disk allows`);
      said = why;
      readiness.starting(name, `refusing: ${why}`, err as Error);
    }
    await new Promise((r) => setTimeout(r, backoff.next()));
  }
}

/** A local consumer's writes wait while disk pressure allows nothing but deletions (an error of the moment). */
function heldBy(pressure: DiskPressure, target: { write(batch: ChunkBatch): Promise<void> }): { write(batch: ChunkBatch): Promise<void> } {
  return { write: (batch) => (pressure.writesHeld ? Promise.reject(new Error(pressure.writesHeld)) : target.write(batch)) };
}

/** Longest a query waits for the readings committed before it to reach the store it reads. */
const FRESH_READ_WAIT_MS = 1000;

/**
 * The store or rollups as queries see them: a query first has the consumer write what waits (it may
 * wait a minute when readings are few), so that it sees every reading committed before it.
 */
function freshReads<T extends { query(q: never): Promise<unknown> }>(target: T, consumer: ConsumerEngine<ChunkBatch>, log: DurableLog): T {
  const reads = new Set<PropertyKey>(['query', 'page', 'fold']);
  const fresh =
    (read: (...a: never[]) => Promise<unknown>) =>
    async (...args: never[]) => {
      await consumer.caughtUp(log.lastSeq, FRESH_READ_WAIT_MS);
      return read(...args);
    };
  return new Proxy(target, {
    get: (t, key) => {
      const value = t[key as keyof T];
      if (typeof value !== 'function') return value;
      const bound = (value as (...a: never[]) => Promise<unknown>).bind(t);
      return reads.has(key) ? fresh(bound) : bound;
    },
  });
}

/** The key for encryption at rest, when configured. */
const atRestKey = (config: Config) => (config.buffer.encryption.keyFile ? readKeyFile(config.buffer.encryption.keyFile) : undefined);

/** AES-256-GCM of each stored value, bound to its LevelDB key. */
function sealer(key: Buffer): Sealer {
  return { seal: (plain, name) => seal(plain, key, Buffer.from(name)), open: (sealed, name) => open(sealed, key, Buffer.from(name)) };
}

/** The embedded broker as the config describes it, handing accepted messages to `onPublish`. */
export function brokerOptions(
  config: Config,
  logger: Logger,
  onPublish?: PublishHook,
  shared?: { users: UserStore; loginGuard: LoginGuard },
): BrokerOptions {
  const b = config.broker;
  const key = atRestKey(config);
  return {
    version: VERSION,
    persistenceDir: join(config.agent.dataDir, 'broker'),
    persistenceSealer: key && sealer(subkey(key, 'broker')),
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

/** The durable log as the config describes it (also opened by `sync status` while no agent runs). */
export function openLog(
  config: Config,
  logger: Logger,
  onCommitted?: (seconds: number) => void,
  onWritten?: (bytes: number) => void,
): Promise<DurableLog> {
  const { agent, buffer, ingest: i } = config;
  return DurableLog.open({
    dir: join(agent.dataDir, 'log'),
    agentId: agent.id,
    maxDelayMs: buffer.maxDelayMs,
    syncIntervalMs: buffer.syncIntervalMs,
    maxRecords: buffer.maxRecords,
    encryptionKey: atRestKey(config),
    deadLetters: i.deadLetters,
    onCommitted,
    onWritten,
    logger: logger.child({ stage: 'log' }),
  });
}

export interface RuntimeOptions {
  /** The config as the file now says (POST /api/config/reload); throws ConfigError if it is not valid. */
  reloadConfig?: () => Config;
  /** The machine's clocks (a test injects its own). */
  clockSource?: ClockSource;
  /** GPIO lines (a test injects a simulated driver); default: as gpio.driver says. */
  gpioDriver?: GpioDriver;
  /** Stop the agent cleanly (a power-fail input); default: SIGTERM to this process, which the CLI handles. */
  shutdown?: (reason: string) => void;
}

/** GPIO as the config says (or the injected driver); undefined with gpio.driver none. */
async function startGpioLines(
  config: Config,
  options: RuntimeOptions,
  sources: Parameters<typeof startGpio>[2],
  logger: Logger,
): Promise<GpioRunning | undefined> {
  const driver = options.gpioDriver ?? (await openDriver(config.gpio));
  return driver && startGpio(config.gpio, driver, sources, logger.child({ stage: 'gpio' }));
}

/** The clock as the config says to read it. */
async function openClock(config: Config, source: ClockSource | undefined, logger: Logger): Promise<Clock> {
  const c = config.health.clock;
  source ??= systemClock(c.syncSource === 'auto' ? await detectSyncSource() : c.syncSource, {
    syncFlag: c.syncFlag,
    procfsPath: config.health.system.procfsPath,
  });
  return new Clock(source, {
    holdSec: c.holdSec,
    offsetsFile: join(config.agent.dataDir, 'clock-offsets.json'),
    logger: logger.child({ stage: 'clock' }),
  });
}

export async function startRuntime(config: Config, logger: Logger, options: RuntimeOptions = {}): Promise<Runtime> {
  const { broker: b, web: w, agent, ingest: i, store: s } = config;
  privateUmask();
  mkdirSync(agent.dataDir, { recursive: true, mode: 0o700 });
  const madePrivate = [agent.dataDir, usersFilePath(config), ...(s.path ? [s.path] : [])].reduce((n, p) => n + makePrivate(p), 0);
  if (madePrivate) logger.warn({ files: madePrivate }, 'data files were readable by other users; made private (0600, folders 0700)');

  // Schemas changed through the API are written here, so a restart keeps them.
  const schemaDir = i.schemaDir ?? join(agent.dataDir, 'schemas');
  mkdirSync(schemaDir, { recursive: true, mode: 0o700 });
  const schemas = new SchemaRegistry({ dir: schemaDir, inline: i.schemas, mode: i.mode });
  const schemaProblems = schemas.load();
  if (schemaProblems.length) throw new ConfigError(schemaProblems, 'reading schemas');

  const writtenAtStart = writtenBytes('process') ?? 0;
  const started = new Stack();
  // Store-and-forward riding out a sink's outage is the agent doing its job, not a fault to page for.
  const readiness = new Readiness(
    (part) => config.health.readiness.sinkOutages === 'buffering' && part.name.startsWith('sink:') && part.state !== 'down',
  );
  for (const part of ['log', ...(s.backend !== 'none' ? ['store'] : []), ...(config.rollups.enabled ? ['rollups'] : []), 'disk', 'broker'])
    readiness.starting(part);
  try {
    // The web listeners first: health answers while a full disk keeps the log from opening.
    let broker: EmbeddedBroker | undefined = undefined; // set once it runs: MQTT over WebSocket waits for it
    // Set once the data path runs: until then the API answers 503 and metrics hold only the process's.
    const running: { api?: AgentApi; metrics?: MetricsSource } = {};
    const metrics = createMetrics(() => running.metrics);
    const h = config.health.system;
    const system = h.enabled
      ? new SystemMonitor({ sys: h.sysfsPath, proc: h.procfsPath, vcgencmd: h.vcgencmd ? findVcgencmd() : undefined }, h.intervalSec * 1000)
      : undefined;
    if (system) {
      await system.start();
      started.push(async () => system.stop());
    }
    const users = new UserStore(usersFilePath(config));
    const stopAdmin = await ensureAdmin(users, w.auth.initialAdminFile ?? join(agent.dataDir, 'initial-admin-password'), logger);
    started.push(async () => stopAdmin());
    const loginGuard = new LoginGuard(
      { ...b.loginThrottle, maxPendingLogins: b.limits.maxPendingLogins, maxPendingPerAddress: b.limits.maxPendingPerAddress },
      logger.child({ stage: 'login' }),
    );
    const web: WebServer = await startWeb({
      http: w.http.enabled ? w.http : undefined,
      https: w.https.cert && w.https.key ? { ...w.https, cert: w.https.cert, key: w.https.key } : undefined,
      mqttWs: b.ws.enabled
        ? {
            path: b.ws.path,
            maxPayload: b.limits.maxPayloadBytes + 65536,
            maxConnections: b.ws.maxConnections,
            allowedOrigins: b.ws.allowedOrigins,
            handle: (stream, listener, remote) => (broker ? broker.handleStream(stream, listener, remote) : stream.destroy()),
          }
        : undefined,
      config: w,
      users,
      keys: new ApiKeyStore(apiKeysPath(agent.dataDir)),
      sessions: new Sessions({ tokenMs: durationMs(w.auth.tokenTtl), refreshMs: durationMs(w.auth.refreshTtl) }),
      guard: loginGuard,
      readiness,
      metrics,
      system: () => system?.latest(),
      api: () => running.api,
      logger: logger.child({ stage: 'web' }),
    });
    started.push(() => web.close());

    const pressure: { disk?: DiskPressure } = {}; // made once the log is open; the log tells it what it writes
    const log = await openWhenDiskAllows(
      'log',
      () =>
        openLog(
          config,
          logger,
          (seconds) => metrics.storageLatency.observe(seconds),
          (bytes) => pressure.disk?.wrote(bytes),
        ),
      readiness,
      logger,
    );
    started.push(() => log.close());
    readiness.set('log', () => ({ name: 'log', ...log.status() }));
    readiness.set('dead-letters', () => ({ name: 'dead-letters', ...log.deadLetterStatus() }));

    const key = atRestKey(config);
    const clock = await openClock(config, options.clockSource, logger);
    const sinkConsumers = () => log.consumers().filter((c) => c.startsWith('sink:'));
    let rollups: Rollups | undefined;
    let store: LocalStore | undefined;
    const disk = new DiskPressure({
      store: () => store,
      dir: agent.dataDir,
      config: config.retention.disk,
      stepReadings: config.retention.stepReadings,
      forwardedThrough: () => Math.min(log.lastSeq, ...sinkConsumers().map((c) => log.cursor(c))),
      rolledUpThrough: () => (rollups ? log.cursor(ROLLUP_CONSUMER) : undefined),
      log,
      logger: logger.child({ stage: 'disk' }),
    });
    pressure.disk = disk;
    readiness.set('disk', () => {
      const d = disk.status();
      return { name: 'disk', state: disk.accepting ? 'ok' : `refusing: disk pressure ${d.level}`, since: d.since };
    });

    /** The store and the rollups: consumers of the log run by the engine, each in its worker thread. */
    const runLocal = async (
      name: string,
      target: { write(batch: ChunkBatch): Promise<void>; writesInFlight?: number },
      opts: { maxRecords: number; maxAgeMs: number; idleAgeMs: number },
    ) => {
      const consumer = new ConsumerEngine(
        log,
        chunkDelivery(name, heldBy(disk, target), log, s.maxBatchBytes, () => clock.offsets()),
        {
          name,
          ...opts,
          hold: () => clock.holding(),
          window: target.writesInFlight ?? 1,
          retry: { initialMs: 250, maxMs: 30_000 },
          logger: logger.child({ stage: name }),
        },
      );
      await consumer.start();
      started.push(() => consumer.stop());
      readiness.set(name, () => {
        const { state, since, lastError } = consumer.status();
        return { name, state, since, ...(lastError ? { lastError } : {}) };
      });
      return consumer;
    };

    // A sink new to this log is known before the store and the rollups take what it holds, so that
    // it gets those readings too (the store may let their chunks go the moment it starts).
    for (const sink of config.sinks) if (!sink.rollups) await log.registerConsumer(consumerOf(sink.name), sink.startAt);

    let storeConsumer: ConsumerEngine<ChunkBatch> | undefined;
    const backend = s.backend;
    if (backend !== 'none') {
      const opened = await openWhenDiskAllows(
        'store',
        () => openStore(backend, s.path ?? defaultStorePath(backend, agent.dataDir), key && subkey(key, 'store')),
        readiness,
        logger,
      );
      store = opened;
      started.push(() => opened.close());
      storeConsumer = await runLocal(STORE_CONSUMER, opened, { maxRecords: s.batchSize, maxAgeMs: s.gatherMs, idleAgeMs: s.maxGatherMs });
    }

    let rollupConsumer: ConsumerEngine<ChunkBatch> | undefined;
    const r = config.rollups;
    if (r.enabled) {
      const rollupSinks = {
        agentId: agent.id,
        consumers: Object.fromEntries(config.sinks.flatMap((x) => (x.rollups ? [[consumerOf(x.name), x.rollups]] : []))),
        deadLetter: (d: RefusedReading) => log.appendDeadLetter(d),
      };
      const opened = await openWhenDiskAllows(
        'rollups',
        () => openRollups(r, r.path ?? defaultRollupPath(agent.dataDir), key && subkey(key, 'rollups'), rollupSinks),
        readiness,
        logger,
      );
      rollups = opened;
      started.push(() => opened.close());
      const consumer = await runLocal(ROLLUP_CONSUMER, opened, { maxRecords: r.batchSize, maxAgeMs: r.gatherMs, idleAgeMs: r.maxGatherMs });
      rollupConsumer = consumer;
      // Buckets close as readings come; when none come, by the clock, once the rollups have all there is.
      const feed = opened.feed;
      if (feed) {
        const ticker = setInterval(() => {
          if (consumer.status().lagRecords === 0)
            feed
              .tick(Date.now())
              .catch((err: Error) => logger.warn({ err: err.message }, 'closing rollup buckets failed; tried again shortly'));
        }, 2000);
        started.push(async () => clearInterval(ticker));
      }
    } else if (log.consumers().includes(ROLLUP_CONSUMER)) {
      await log.dropConsumer(ROLLUP_CONSUMER); // rollups turned off: they must not hold the log's chunks back
    }
    await disk.start();
    started.push(async () => disk.stop());

    const retention = startRetention({
      config: config.retention,
      store,
      rollups,
      log,
      logger: logger.child({ stage: 'retention' }),
      clockTrusted: () => clock.trusted(),
    });
    started.push(async () => retention.stop());

    const sync = await startSync({
      agentId: agent.id,
      sinks: config.sinks,
      log,
      rollups: rollups?.feed && { feed: rollups.feed, tags: [...new Set(r.series.flatMap((x) => x.tags))] },
      schemas,
      clock,
      logger: logger.child({ stage: 'sync' }),
    });
    started.push(() => sync.stop());
    readiness.set('sinks', async () =>
      (await sync.status()).map((x) => ({
        name: `sink:${x.name}`,
        state: x.state,
        since: x.since,
        ...(x.lastError ? { lastError: x.lastError } : {}),
      })),
    );

    // Assigned below, once ingest exists; asked only once the control socket serves.
    let written = (): DiskWrites => diskWrites(0, 0, 0, 0);
    const syncStatus = async () => ({
      store: storeConsumer && { type: backend, ...storeConsumer.status() },
      rollups: rollupConsumer && { type: 'sqlite', ...rollupConsumer.status() },
      sinks: await sync.status(),
      written: written(),
      disk: disk.status(),
      dropped: log.stats().dropped,
    });
    const health = async () => ({
      ...(await readiness.report()),
      system: system?.latest() ?? null,
      clock: clock.status(),
      gpio: running.api?.gpio() ?? null,
      sensors: running.api?.sensors() ?? [],
    });
    const sessions = () => running.api?.sessions;
    const control = await startControlSocket(
      controlSocketPath(agent.dataDir),
      {
        'GET /sync/status': syncStatus,
        'GET /health': health,
        'GET /sessions': async () => sessions()?.list() ?? [],
        'POST /sessions/end/': async (clientId) => ((await sessions()?.end(clientId)) ? { ended: clientId } : undefined),
      },
      logger,
    );
    started.push(() => control.close());

    const sensorLog = logger.child({ stage: 'sensors' });
    const sensors = new SensorWatch(config.health.sensors, (c) =>
      sensorLog[c.state === 'stale' ? 'warn' : 'info'](
        { sensor: c.sensor, silentSec: c.silentSec },
        c.state === 'stale' ? 'sensor stale: silent too long' : 'sensor publishing again',
      ),
    );
    sensors.start();
    started.push(async () => sensors.stop());
    const ingest = createIngest({
      schemas,
      log,
      unmatched: i.unmatched,
      qos0Overflow: i.qos0Overflow,
      limits: i.limits,
      maxPendingBytes: config.buffer.maxPendingBytes,
      clock,
      admission: disk,
      watch: sensors.watching ? sensors : undefined,
    });

    // The rate the card is written at now: sampled each minute, the last hour kept (start-up's writes age out).
    const rate = new WriteRate();
    const totalWritten = () => (writtenBytes('process') ?? writtenAtStart) - writtenAtStart;
    rate.sample(totalWritten());
    const sampler = setInterval(() => rate.sample(totalWritten()), 60_000);
    sampler.unref();
    started.push(async () => clearInterval(sampler));
    const card = () => ({
      bytes: config.health.card.bytes ?? disk.status().totalBytes,
      ratedFullWrites: config.health.card.ratedFullWrites,
    });
    written = () => {
      const total = totalWritten();
      return diskWrites(total, store?.writtenBytes() ?? 0, rollups?.writtenBytes() ?? 0, ingest.stats.accepted, rate.perDay(total), card());
    };
    const mqtt = await startBroker(brokerOptions(config, logger, ingest.hook, { users, loginGuard }));
    broker = mqtt;
    started.push(() => mqtt.close());
    const rollback = bootConfigRollback(agent.dataDir);
    if (rollback && stillShown(rollback))
      logger.warn({ at: rollback.at }, `the config from the boot partition was rolled back: ${rollback.reason}`);
    const alerts = startAlerts(
      config.health.alerts,
      {
        system,
        disk,
        log,
        sync,
        sensors,
        clockSynced: () => clock.trusted(),
        bootConfigRollback: rollback,
        publish: (topic, payload) => mqtt.publish(topic, payload, true),
      },
      logger.child({ stage: 'alerts' }),
    );
    started.push(async () => alerts.stop());
    const gpio = await startGpioLines(
      config,
      options,
      {
        async take(topic, payload) {
          await ingest.hook({ topic, payload, qos: 1, retain: false, clientId: 'gpio' })?.safe;
          mqtt.publish(topic, payload.toString(), false); // local subscribers see it as they see a sensor's
        },
        async ledInputs() {
          const { parts } = await readiness.report();
          return { parts, sinks: await sync.status(), alertsFiring: alerts.engine.active().length };
        },
        alertsFiring: () => alerts.engine.active().map((a) => a.name),
        flush: () => log.commitNow(),
        shutdown: options.shutdown ?? (() => process.kill(process.pid, 'SIGTERM')),
      },
      logger,
    );
    if (gpio) started.push(async () => gpio.stop());
    const lag = () =>
      log.consumers().map((name) => ({ name, cursor: log.cursor(name), lagRecords: Math.max(0, log.lastSeq - log.cursor(name)) }));
    running.metrics = {
      ingest: ingest.stats,
      broker: () => mqtt.stats(),
      log: () => log.stats(),
      lag: () => lag().map((c) => ({ name: c.name, records: c.lagRecords })),
      sinks: () => sync.status(),
      disk: () => disk.status(),
      written: () => written(),
      system: () => system?.latest(),
      sensors: () => sensors.status(),
      alerts: () => alerts.engine.active(),
      clock: () => clock.status(),
    };
    const live = new LiveHub(log, agent.id, {
      maxClients: w.limits.liveClients,
      maxPerOwner: w.limits.liveClientsPerUser,
      maxBufferedBytes: w.limits.liveBufferBytes,
    });
    running.api = {
      agentId: agent.id,
      store: store && storeConsumer && freshReads(store, storeConsumer, log),
      rollups: rollups && rollupConsumer && freshReads(rollups, rollupConsumer, log),
      submit: (messages) => ingest.submit(messages),
      topicProblem: (topic) => topicNameProblem(topic, config.broker.limits),
      schemas: new SchemaEditor(schemas),
      live,
      sensors: () => sensors.status(),
      clock: () => clock.status(),
      gpio: () => gpio?.status() ?? null,
      alerts: () => ({ active: alerts.engine.active(), recent: alerts.engine.history.slice(-50) }),
      deadLetters: log,
      stats: () => ({
        ingest: ingest.stats,
        broker: mqtt.stats(),
        log: log.stats(),
        written: written(),
        disk: disk.status(),
        live: { clients: live.size, closedTooSlow: live.slowClosed },
      }),
      buffer: () => ({ log: log.stats(), consumers: lag() }),
      sinks: () => sync.status(),
      config: () => redact(config),
      retrySink: (name) => sync.retry(name),
      sessions: mqtt.sessions,
      reloadConfig() {
        if (!options.reloadConfig) throw new ConfigError(['the agent was started without a config file to read again'], 'reload');
        const next = options.reloadConfig();
        const plan = planReload(config, next); // key paths only: a changed password is named, never shown
        if (plan.applied.includes('ingest.schemas')) {
          schemas.setInline(next.ingest.schemas);
          const problems = schemas.load();
          if (problems.length) throw new ConfigError(problems, 'ingest.schemas');
          config.ingest.schemas = next.ingest.schemas;
        }
        logger.info({ ...plan }, 'config reloaded');
        return plan;
      },
    };
    started.push(async () => void (running.api = undefined));
    const brokerSince = new Date().toISOString();
    readiness.set('broker', () => ({ name: 'broker', state: 'ok', since: brokerSince }));

    return {
      listeners: { ...mqtt.listeners, ...web.listeners },
      broker: mqtt,
      log,
      store,
      rollups,
      disk,
      readiness,
      retention,
      sync,
      storeCaughtUp: (seq, timeoutMs) => storeConsumer?.caughtUp(seq, timeoutMs) ?? Promise.resolve(false),
      storeStatus: () => storeConsumer?.status(),
      rollupsCaughtUp: (seq, timeoutMs) => rollupConsumer?.caughtUp(seq, timeoutMs) ?? Promise.resolve(false),
      ingestStats: ingest.stats,
      diskWrites: () => written(),
      reloadSchemas() {
        const problems = schemas.load();
        if (problems.length) logger.error({ problems }, 'schema reload: these files keep their previous version');
        logger.info({ schemas: schemas.list().map((x) => x.id) }, 'schemas reloaded');
        return problems;
      },
      async statusLine() {
        const [report, sinks] = await Promise.all([readiness.report(), sync.status()]);
        const { ready, parts } = report;
        const notOk = parts.filter((p) => p.state !== 'ok' && !p.name.startsWith('sink:')).map((p) => `${p.name} ${p.state}`);
        const sinkText = sinks.map((x) => `${x.name} ${x.state}${x.lagRecords ? ` (lag ${x.lagRecords})` : ''}`).join(', ');
        const firing = alerts.engine.active().length;
        return [
          ready ? statusOf(report) : `not ready${notOk.length ? `: ${notOk.join(', ')}` : ''}`,
          `${ingest.stats.accepted} readings taken`,
          `${mqtt.stats().clientsConnected} clients`,
          ...(sinkText ? [`sinks: ${sinkText}`] : []),
          ...(firing ? [`${firing} alerts firing`] : []),
        ].join('; ');
      },
      // Stop taking readings first, then let the log commit what it holds, then the consumers.
      close: () => started.closeAll(),
    };
  } catch (err) {
    await started.closeAll();
    throw err;
  }
}
