// The machine the agent runs on: its health sample, its clock, its sensors' silence, its GPIO lines.
import { join } from 'node:path';
import type { Config } from '../config-schema.js';
import { GpioLines, openDriver, type GpioSources } from '../gpio/index.js';
import { SensorWatch } from '../health/sensors.js';
import { findVcgencmd, SystemMonitor } from '../health/system.js';
import { Clock, detectSyncSource, systemClock, type ClockSource } from '../ingest/clock.js';
import type { Closers } from '../lib/closers.js';
import type { Logger } from '../lib/logger.js';
import type { RuntimeOptions } from './options.js';

/** Temperature, throttling, CPU, memory and disk of the machine, sampled; undefined when health.system is off. */
export async function startSystemMonitor(config: Config, started: Closers): Promise<SystemMonitor | undefined> {
  const h = config.health.system;
  if (!h.enabled) return undefined;
  const system = new SystemMonitor(
    { sys: h.sysfsPath, proc: h.procfsPath, vcgencmd: h.vcgencmd ? findVcgencmd() : undefined },
    h.intervalSec * 1000,
  );
  await system.start();
  started.push(async () => system.stop());
  return system;
}

/** The clock as the config says to read it (or the injected source). */
export async function openClock(config: Config, source: ClockSource | undefined, logger: Logger): Promise<Clock> {
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

/** Sensors silent for longer than their rule allows, logged as they go stale and come back. */
export function startSensorWatch(config: Config, logger: Logger, started: Closers): SensorWatch {
  const said = logger.child({ stage: 'sensors' });
  const sensors = new SensorWatch(config.health.sensors, (c) =>
    said[c.state === 'stale' ? 'warn' : 'info'](
      { sensor: c.sensor, silentSec: c.silentSec },
      c.state === 'stale' ? 'sensor stale: silent too long' : 'sensor publishing again',
    ),
  );
  sensors.start();
  started.push(async () => sensors.stop());
  return sensors;
}

/** GPIO as the config says (or the injected driver); undefined with gpio.driver none. */
export async function startGpioLines(
  config: Config,
  options: RuntimeOptions,
  sources: GpioSources,
  logger: Logger,
  started: Closers,
): Promise<GpioLines | undefined> {
  const driver = options.gpioDriver ?? (await openDriver(config.gpio));
  const gpio = driver && new GpioLines(config.gpio, driver, sources, logger.child({ stage: 'gpio' }));
  if (gpio) started.push(async () => gpio.stop());
  return gpio;
}
