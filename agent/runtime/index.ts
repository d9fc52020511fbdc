// The composition root: the stages of the pipeline in the order a reading walks them (broker ->
// ingest -> durable log -> consumers: the local store, the rollups, the sinks), each created from its
// config section by its own module and handed to the next through its interface; then what watches
// and serves them. Started from the log's end (nothing is taken before it can be kept), closed in reverse.
import { realpathSync } from 'node:fs';
import type { EmbeddedBroker } from '../../embedded-broker/index.js';
import type { Config } from '../config-schema.js';
import type { Local, LocalConsumers } from '../consume/local.js';
import type { Rollups } from '../consume/rollups/index.js';
import type { Sync } from '../consume/sinks/index.js';
import type { LocalStore } from '../consume/store/index.js';
import { Readiness } from '../health/readiness.js';
import type { Ingest, IngestStats } from '../ingest/pipeline.js';
import { Closers } from '../lib/closers.js';
import type { DiskWrites } from '../lib/disk-writes.js';
import type { Logger } from '../lib/logger.js';
import type { DurableLog } from '../log/index.js';
import { Retention } from '../retention/index.js';
import type { DiskPressure } from '../retention/pressure.js';
import { ingestFrom, startBrokerStage } from './broker.js';
import { startConsumers } from './consumers.js';
import { loadSchemas, prepareDataDir } from './data-dir.js';
import { startLogStage } from './durable-log.js';
import { openClock, startSensorWatch, startSystemMonitor } from './host.js';
import type { RuntimeOptions } from './options.js';
import { serve, statusLine, type Parts } from './parts.js';
import { startWatch } from './watch.js';
import { WearMeter, type WearParts } from './wear.js';
import { startWebStage, type Served } from './web.js';

export { brokerOptions } from './broker.js';
export { openLog } from './durable-log.js';
export type { RuntimeOptions } from './options.js';

/** The running agent as the CLI sees it. */
export interface Runtime {
  /** Listener name -> bound host:port (mqtt, mqtts, ws, wss, http, https). */
  listeners: Record<string, string>;
  /** The log's directory, its real path (cli.ts hands its table files' pages back to the kernel). */
  logDir: string;
  /** Re-read the schemas (SIGHUP); a broken file keeps its previous version. Returns the problems. */
  reloadSchemas(): string[];
  /** How the agent is, in one line (systemd's STATUS=). */
  statusLine(): Promise<string>;
  /** Stop taking readings first, then the consumers, then the log (which commits what it holds), the web last. */
  close(): Promise<void>;
}

/** The running agent with its stages in view: for the tests' in-process agent, which looks inside. */
export interface Stages extends Runtime {
  broker: EmbeddedBroker;
  ingestStats: IngestStats;
  log: DurableLog;
  store: Local<LocalStore> | undefined;
  rollups: Local<Rollups> | undefined;
  sync: Sync;
  /** Free space against the watermarks, and what pressure made the agent give up. */
  disk: DiskPressure;
  retention: Retention;
  /** Each part of the data path and its state; ready when all are ok. */
  readiness: Readiness;
  /** Bytes written to storage since start (SD-card wear), in all, by the store, and per reading. */
  diskWrites(): DiskWrites;
}

export function startRuntime(config: Config, logger: Logger, options: RuntimeOptions = {}): Promise<Runtime> {
  return startStages(config, logger, options);
}

export async function startStages(config: Config, logger: Logger, options: RuntimeOptions = {}): Promise<Stages> {
  prepareDataDir(config, logger);
  const schemas = loadSchemas(config);
  const wear = new WearMeter();
  const started = new Closers();
  const readiness = newReadiness(config);
  try {
    // The web listeners first: health answers while a full disk keeps the log from opening.
    const served: Served = {};
    const system = await startSystemMonitor(config, started);
    const web = await startWebStage(config, served, { readiness, system }, logger, started);
    // The data path, from its end: the log, its consumers, ingest, and the broker that feeds ingest.
    const made: { local?: LocalConsumers } = {}; // disk pressure relieves the store once it runs
    const { log, disk } = await startLogStage(config, { readiness, metrics: web.metrics, local: () => made.local }, logger, started);
    const clock = await openClock(config, options.clockSource, logger);
    const { local, sync } = await startConsumers(config, { log, disk, clock, schemas, readiness }, logger, started);
    made.local = local;
    await disk.start();
    started.push(async () => disk.stop());
    const retention = new Retention({
      config: config.retention,
      store: local.store?.target,
      rollups: local.rollups?.target,
      log,
      logger: logger.child({ stage: 'retention' }),
      clockTrusted: () => clock.trusted(),
    });
    started.push(async () => retention.stop());
    const sensors = startSensorWatch(config, logger, started);
    const ingest = ingestFrom(config, { schemas, log, clock, disk, sensors });
    wear.start(wearParts(config, local, ingest, disk));
    started.push(async () => wear.stop());
    const broker = await startBrokerStage(config, ingest, web, served, logger, started);
    // What watches and serves the stages.
    const watched = { broker, ingest, log, sync, disk, clock, sensors, system, readiness };
    const { alerts, gpio } = await startWatch(config, watched, options, logger, started);
    const parts: Parts = { ...watched, config, schemas, local, gpio, alerts, wear };
    await serve(parts, served, options.reloadConfig, logger, started);
    const brokerSince = new Date().toISOString();
    readiness.set('broker', () => ({ name: 'broker', state: 'ok', since: brokerSince }));

    return {
      listeners: { ...broker.listeners, ...web.server.listeners },
      logDir: realpathSync(log.dir),
      broker,
      ingestStats: ingest.stats,
      log,
      store: local.store,
      rollups: local.rollups,
      sync,
      disk,
      retention,
      readiness,
      diskWrites: () => wear.report(),
      reloadSchemas() {
        const problems = schemas.load();
        if (problems.length) logger.error({ problems }, 'schema reload: these files keep their previous version');
        logger.info({ schemas: schemas.list().map((x) => x.id) }, 'schemas reloaded');
        return problems;
      },
      statusLine: () => statusLine(parts),
      close: () => started.closeAll(),
    };
  } catch (err) {
    await started.closeAll();
    throw err;
  }
}

/** Every part of the data path starts not ready; a sink's outage, ridden out by buffering, may leave the agent ready. */
function newReadiness(config: Config): Readiness {
  const readiness = new Readiness(
    (part) => config.health.readiness.sinkOutages === 'buffering' && part.name.startsWith('sink:') && part.state !== 'down',
  );
  const parts = ['log', config.store.backend !== 'none' && 'store', config.rollups.enabled && 'rollups', 'disk', 'broker'];
  for (const part of parts) if (part) readiness.starting(part);
  return readiness;
}

function wearParts(config: Config, local: LocalConsumers, ingest: Ingest, disk: DiskPressure): WearParts {
  const card = config.health.card;
  return {
    store: () => local.store?.target.writtenBytes() ?? 0,
    rollups: () => local.rollups?.target.writtenBytes() ?? 0,
    readings: () => ingest.stats.accepted,
    card: () => ({ bytes: card.bytes ?? disk.status().totalBytes, ratedFullWrites: card.ratedFullWrites }),
  };
}
