// The running parts, and what the API, the metrics, the control socket and the status line see of them.
import { topicNameProblem, type EmbeddedBroker } from '../../embedded-broker/index.js';
import { redact, type Config } from '../config-schema.js';
import { ConfigError } from '../config/load.js';
import { planReload, type ReloadResult } from '../config/reload.js';
import type { LocalConsumers } from '../consume/local.js';
import type { Sync } from '../consume/sinks/index.js';
import type { GpioLines } from '../gpio/index.js';
import type { AlertEngine } from '../health/alerts.js';
import type { MetricsSource } from '../health/metrics.js';
import { statusOf, type Readiness } from '../health/readiness.js';
import type { SensorWatch } from '../health/sensors.js';
import type { SystemMonitor } from '../health/system.js';
import type { Clock } from '../ingest/clock.js';
import type { Ingest } from '../ingest/pipeline.js';
import { SchemaEditor } from '../ingest/schema-editor.js';
import type { SchemaRegistry } from '../ingest/schemas.js';
import type { Logger } from '../lib/logger.js';
import type { DurableLog } from '../log/index.js';
import type { DiskPressure } from '../retention/pressure.js';
import type { AgentApi } from '../serve/web/api.js';
import { LiveHub } from '../serve/web/live.js';
import { controlSocketPath, startControlSocket } from '../control/socket.js';
import type { Closers } from '../lib/closers.js';
import type { Served } from './web.js';
import type { WearMeter } from './wear.js';

export interface Parts {
  config: Config;
  broker: EmbeddedBroker;
  ingest: Ingest;
  schemas: SchemaRegistry;
  log: DurableLog;
  local: LocalConsumers;
  sync: Sync;
  disk: DiskPressure;
  readiness: Readiness;
  clock: Clock;
  sensors: SensorWatch;
  system: SystemMonitor | undefined;
  gpio: GpioLines | undefined;
  alerts: { engine: AlertEngine };
  wear: WearMeter;
}

/** The control socket (`edge-agent sync status`, `health`, `session`), and the web API and metrics, which answered 503 until now. */
export async function serve(
  p: Parts,
  served: Served,
  reloadConfig: (() => Config) | undefined,
  logger: Logger,
  started: Closers,
): Promise<void> {
  const sessions = p.broker.sessions;
  const control = await startControlSocket(
    controlSocketPath(p.config.agent.dataDir),
    {
      'GET /sync/status': () => syncStatus(p),
      'POST /sync/flush': () => flushLocal(p),
      'GET /health': () => health(p),
      'GET /sessions': async () => sessions.list(),
      'POST /sessions/end/': async (clientId) => ((await sessions.end(clientId)) ? { ended: clientId } : undefined),
    },
    logger,
  );
  started.push(() => control.close());
  const w = p.config.web.limits;
  const live = new LiveHub(p.log, p.config.agent.id, {
    maxClients: w.liveClients,
    maxPerOwner: w.liveClientsPerUser,
    maxBufferedBytes: w.liveBufferBytes,
  });
  served.metrics = metricsSource(p);
  served.api = agentApi(p, live, reloadConfig, logger);
  started.push(async () => void (served.api = undefined)); // closing: the API answers 503 first
}

/**
 * The store and the rollups write what they have gathered now, rather than at its age (before the
 * database files are copied, say, or a measurement of what they write). Each says whether it got
 * there within 8 s (the control socket answers within 10).
 */
async function flushLocal(p: Parts): Promise<{ throughSeq: number; store?: boolean; rollups?: boolean }> {
  const seq = p.log.lastSeq;
  const [store, rollups] = await Promise.all([p.local.store?.caughtUp(seq, 8000), p.local.rollups?.caughtUp(seq, 8000)]);
  return { throughSeq: seq, store, rollups };
}

/** Each consumer of the log: its cursor and how far behind the last reading it is. */
function lag(log: DurableLog): { name: string; cursor: number; lagRecords: number }[] {
  return log.consumers().map((name) => ({ name, cursor: log.cursor(name), lagRecords: Math.max(0, log.lastSeq - log.cursor(name)) }));
}

function metricsSource(p: Parts): MetricsSource {
  return {
    ingest: p.ingest.stats,
    broker: () => p.broker.stats(),
    log: () => p.log.stats(),
    lag: () => lag(p.log).map((c) => ({ name: c.name, records: c.lagRecords })),
    sinks: () => p.sync.status(),
    disk: () => p.disk.status(),
    written: () => p.wear.report(),
    system: () => p.system?.latest(),
    sensors: () => p.sensors.status(),
    alerts: () => p.alerts.engine.active(),
    clock: () => p.clock.status(),
  };
}

/** The web layer's one view of the agent. */
function agentApi(p: Parts, live: LiveHub, reloadConfig: (() => Config) | undefined, logger: Logger): AgentApi {
  const { config, log, local } = p;
  return {
    agentId: config.agent.id,
    store: local.store?.reads,
    rollups: local.rollups?.reads,
    submit: (messages) => p.ingest.submit(messages),
    topicProblem: (topic) => topicNameProblem(topic, config.broker.limits),
    schemas: new SchemaEditor(p.schemas),
    live,
    sensors: () => p.sensors.status(),
    clock: () => p.clock.status(),
    gpio: () => p.gpio?.status() ?? null,
    alerts: () => ({ active: p.alerts.engine.active(), recent: p.alerts.engine.history.slice(-50) }),
    deadLetters: log,
    stats: () => ({
      ingest: p.ingest.stats,
      broker: p.broker.stats(),
      log: log.stats(),
      written: p.wear.report(),
      disk: p.disk.status(),
      live: { clients: live.size, closedTooSlow: live.slowClosed },
    }),
    buffer: () => ({ log: log.stats(), consumers: lag(log) }),
    sinks: () => p.sync.status(),
    config: () => redact(config),
    retrySink: (name) => p.sync.retry(name),
    sessions: p.broker.sessions,
    reloadConfig: () => reload(p, reloadConfig, logger),
  };
}

/** What a reload applies now (the inline schemas); the rest is named for a restart. */
function reload(p: Parts, read: (() => Config) | undefined, logger: Logger): ReloadResult {
  if (!read) throw new ConfigError(['the agent was started without a config file to read again'], 'reload');
  const next = read();
  const plan = planReload(p.config, next); // key paths only: a changed password is named, never shown
  if (plan.applied.includes('ingest.schemas')) {
    p.schemas.setInline(next.ingest.schemas);
    const problems = p.schemas.load();
    if (problems.length) throw new ConfigError(problems, 'ingest.schemas');
    p.config.ingest.schemas = next.ingest.schemas;
  }
  logger.info({ ...plan }, 'config reloaded');
  return plan;
}

/** What `edge-agent sync status` shows. */
async function syncStatus(p: Parts) {
  const { store, rollups } = p.local;
  return {
    store: store && { type: p.config.store.backend, ...store.status() },
    rollups: rollups && { type: 'sqlite', ...rollups.status() },
    sinks: await p.sync.status(),
    written: p.wear.report(),
    disk: p.disk.status(),
    dropped: p.log.stats().dropped,
  };
}

/** What `edge-agent health` shows. */
async function health(p: Parts) {
  return {
    ...(await p.readiness.report()),
    system: p.system?.latest() ?? null,
    clock: p.clock.status(),
    gpio: p.gpio?.status() ?? null,
    sensors: p.sensors.status(),
  };
}

/** How the agent is, in one line (systemd's STATUS=). */
export async function statusLine(p: Parts): Promise<string> {
  const [report, sinks] = await Promise.all([p.readiness.report(), p.sync.status()]);
  const { ready, parts } = report;
  const notOk = parts.filter((x) => x.state !== 'ok' && !x.name.startsWith('sink:')).map((x) => `${x.name} ${x.state}`);
  const sinkText = sinks.map((x) => `${x.name} ${x.state}${x.lagRecords ? ` (lag ${x.lagRecords})` : ''}`).join(', ');
  const firing = p.alerts.engine.active().length;
  return [
    ready ? statusOf(report) : `not ready${notOk.length ? `: ${notOk.join(', ')}` : ''}`,
    `${p.ingest.stats.accepted} readings taken`,
    `${p.broker.stats().clientsConnected} clients`,
    ...(sinkText ? [`sinks: ${sinkText}`] : []),
    ...(firing ? [`${firing} alerts firing`] : []),
  ].join('; ');
}
