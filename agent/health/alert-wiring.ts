// What the alerts watch, gathered from the running agent: the machine, the disk, the log, the
// sinks, the sensors and the clock; evaluated every alerts.intervalSec.
import type { DurableLog } from '../log/index.js';
import type { HealthConfig } from './config.js';
import type { Logger } from '../lib/logger.js';
import type { DiskPressure } from '../retention/pressure.js';
import type { Sync } from '../consume/sinks/index.js';
import { AlertEngine, webhookPoster, type Conditions, type Values } from './alerts.js';
import type { SensorWatch } from './sensors.js';
import type { SystemMonitor } from './system.js';
import { stillShown, type BootConfigRollback } from './boot-config.js';

export interface AlertSources {
  system: SystemMonitor | undefined;
  disk: DiskPressure;
  log: DurableLog;
  sync: Sync;
  sensors: SensorWatch;
  clockSynced: () => boolean;
  /** A config from the boot partition the agent could not run with, put back (read at start). */
  bootConfigRollback?: BootConfigRollback;
  publish(topic: string, payload: string): void;
}

const LEVELS = ['ok', 'warn', 'act', 'critical', 'reserve'];

export function startAlerts(a: HealthConfig['alerts'], sources: AlertSources, logger: Logger): { engine: AlertEngine; stop(): void } {
  const engine = new AlertEngine(
    a,
    { publish: sources.publish, post: a.webhook && webhookPoster(a.webhook.url, a.webhook.timeoutMs) },
    logger,
  );
  let running = false;
  const evaluate = async () => {
    if (running) return;
    running = true;
    try {
      const sinks = await sources.sync.status();
      const sample = sources.system?.latest();
      const disk = sources.disk.status();
      const log = sources.log.stats();
      const values: Values = {
        'system.temperatureC': sample?.temperatureC ?? undefined,
        'system.cpuPercent': sample?.cpu.percent,
        'system.load1': sample?.cpu.load1,
        'system.memoryAvailableBytes': sample?.memory.availableBytes,
        'disk.freeBytes': disk.freeBytes,
        'disk.freePercent': disk.totalBytes ? (disk.freeBytes / disk.totalBytes) * 100 : undefined,
        'log.records': log.records,
        'log.bytes': log.bytes,
        deadLetters: log.deadLetters,
        'sync.lagRecords': sinks.length ? Math.max(...sinks.map((s) => s.lagRecords)) : undefined,
        'sync.lagSeconds': sinks.length ? Math.max(...sinks.map((s) => s.oldestUnsentMs / 1000)) : undefined,
      };
      const conditions: Conditions = new Map();
      for (const s of sources.sensors.status())
        if (s.state === 'stale') conditions.set(`sensor-stale:${s.sensor}`, { message: `sensor ${s.sensor} silent since ${s.lastSeen}` });
      for (const s of sinks) {
        const downMs = Date.now() - Date.parse(s.since);
        if (s.state !== 'ok' && downMs >= a.sinkDownMinutes * 60_000)
          conditions.set(`sink-down:${s.name}`, {
            message: `sink ${s.name} ${s.state} since ${s.since}${s.lastError ? `: ${s.lastError.message}` : ''}`,
            value: s.lagRecords,
          });
      }
      if (LEVELS.indexOf(disk.level) >= LEVELS.indexOf(a.diskPressure))
        conditions.set('disk-pressure', { message: `disk pressure ${disk.level}: ${disk.freeBytes} bytes free`, value: disk.freeBytes });
      const rollback = sources.bootConfigRollback;
      if (rollback && stillShown(rollback))
        conditions.set('boot-config-rolled-back', {
          message: `the config from the boot partition (${rollback.at}) was rolled back: ${rollback.reason}`,
        });
      const deadLetters = sources.log.deadLetterStatus();
      if (deadLetters.state !== 'ok') conditions.set('dead-letters-full', { message: deadLetters.state, value: log.deadLetters });
      if (a.clockUnsynchronised && !sources.clockSynced())
        conditions.set('clock-unsynchronised', { message: 'the system clock is not synchronised: readings are marked until it is' });
      engine.evaluate(values, conditions);
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'alert evaluation failed; tried again next time');
    } finally {
      running = false;
    }
  };
  void evaluate();
  const timer = setInterval(() => void evaluate(), a.intervalSec * 1000);
  timer.unref();
  return { engine, stop: () => clearInterval(timer) };
}
