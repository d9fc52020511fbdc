// The durable log as the config describes it, and opening a part whose disk may be full.
import { join } from 'node:path';
import type { Config } from '../config-schema.js';
import type { LocalConsumers } from '../consume/local.js';
import type { Metrics } from '../health/metrics.js';
import type { Readiness } from '../health/readiness.js';
import type { Closers } from '../lib/closers.js';
import { Backoff } from '../lib/backoff.js';
import { describeDiskError, isDiskError } from '../lib/faults.js';
import type { Logger } from '../lib/logger.js';
import { DurableLog } from '../log/index.js';
import { DiskPressure } from '../retention/pressure.js';
import { atRestKey } from './at-rest.js';

/**
 * The durable log, and free space against the watermarks, which the log's writes count towards
 * (pressure is checked from the moment the consumers run: it may relieve the store).
 */
export async function startLogStage(
  config: Config,
  parts: { readiness: Readiness; metrics: Metrics; local(): LocalConsumers | undefined },
  logger: Logger,
  started: Closers,
): Promise<{ log: DurableLog; disk: DiskPressure }> {
  const { readiness } = parts;
  const made: { disk?: DiskPressure } = {}; // set once made; the log counts its writes from its first
  const log = await openWhenDiskAllows(
    'log',
    () =>
      openLog(
        config,
        logger,
        (seconds) => parts.metrics.storageLatency.observe(seconds),
        (bytes) => made.disk?.wrote(bytes),
      ),
    readiness,
    logger,
  );
  started.push(() => log.close());
  readiness.set('log', () => ({ name: 'log', ...log.status() }));
  readiness.set('dead-letters', () => ({ name: 'dead-letters', ...log.deadLetterStatus() }));
  const disk = newDiskPressure(config, log, parts.local, logger);
  made.disk = disk;
  readiness.set('disk', () => {
    const d = disk.status();
    return { name: 'disk', state: disk.accepting ? 'ok' : `refusing: disk pressure ${d.level}`, since: d.since };
  });
  return { log, disk };
}

function newDiskPressure(config: Config, log: DurableLog, local: () => LocalConsumers | undefined, logger: Logger): DiskPressure {
  const sinkConsumers = () => log.consumers().filter((c) => c.startsWith('sink:'));
  return new DiskPressure({
    store: () => local()?.store?.target,
    dir: config.agent.dataDir,
    config: config.retention.disk,
    stepReadings: config.retention.stepReadings,
    forwardedThrough: () => Math.min(log.lastSeq, ...sinkConsumers().map((c) => log.cursor(c))),
    rolledUpThrough: () => {
      const rollups = local()?.rollups;
      return rollups ? log.cursor(rollups.name) : undefined;
    },
    log,
    logger: logger.child({ stage: 'disk' }),
  });
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
    commitBytes: buffer.commitBytes,
    maxRecords: buffer.maxRecords,
    encryptionKey: atRestKey(config),
    deadLetters: i.deadLetters,
    onCommitted,
    onWritten,
    logger: logger.child({ stage: 'log' }),
  });
}

/**
 * Open a part whose disk may be full (the log, the store): retried with backoff while the error is
 * the disk's, reported as `refusing: <why>` meanwhile; any other error stops start-up.
 */
export async function openWhenDiskAllows<T>(name: string, open: () => Promise<T>, readiness: Readiness, logger: Logger): Promise<T> {
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
