// What watches the running stages: alerts, and the GPIO lines (a status LED, buttons, inputs).
import type { EmbeddedBroker } from '../../embedded-broker/index.js';
import type { Config } from '../config-schema.js';
import type { Sync } from '../consume/sinks/index.js';
import type { GpioLines } from '../gpio/index.js';
import { startAlerts } from '../health/alert-wiring.js';
import type { AlertEngine } from '../health/alerts.js';
import { bootConfigRollback, stillShown } from '../health/boot-config.js';
import type { Readiness } from '../health/readiness.js';
import type { SensorWatch } from '../health/sensors.js';
import type { SystemMonitor } from '../health/system.js';
import type { Clock } from '../ingest/clock.js';
import type { Ingest } from '../ingest/pipeline.js';
import type { Closers } from '../lib/closers.js';
import type { Logger } from '../lib/logger.js';
import type { DurableLog } from '../log/index.js';
import type { DiskPressure } from '../retention/pressure.js';
import { startGpioLines } from './host.js';
import type { RuntimeOptions } from './options.js';

export interface WatchedParts {
  broker: EmbeddedBroker;
  ingest: Ingest;
  log: DurableLog;
  sync: Sync;
  disk: DiskPressure;
  clock: Clock;
  sensors: SensorWatch;
  system: SystemMonitor | undefined;
  readiness: Readiness;
}

export async function startWatch(
  config: Config,
  p: WatchedParts,
  options: RuntimeOptions,
  logger: Logger,
  started: Closers,
): Promise<{ alerts: { engine: AlertEngine }; gpio: GpioLines | undefined }> {
  const rollback = bootConfigRollback(config.agent.dataDir);
  if (rollback && stillShown(rollback))
    logger.warn({ at: rollback.at }, `the config from the boot partition was rolled back: ${rollback.reason}`);
  const alerts = startAlerts(
    config.health.alerts,
    {
      system: p.system,
      disk: p.disk,
      log: p.log,
      sync: p.sync,
      sensors: p.sensors,
      clockSynced: () => p.clock.trusted(),
      bootConfigRollback: rollback,
      publish: (topic, payload) => p.broker.publish(topic, payload, true),
    },
    logger.child({ stage: 'alerts' }),
  );
  started.push(async () => alerts.stop());
  const gpio = await startGpioLines(
    config,
    options,
    {
      async take(topic, payload) {
        await p.ingest.hook({ topic, payload, qos: 1, retain: false, clientId: 'gpio' })?.safe;
        p.broker.publish(topic, payload.toString(), false); // local subscribers see it as they see a sensor's
      },
      async ledInputs() {
        const { parts } = await p.readiness.report();
        return { parts, sinks: await p.sync.status(), alertsFiring: alerts.engine.active().length };
      },
      alertsFiring: () => alerts.engine.active().map((a) => a.name),
      flush: () => p.log.commitNow(),
      shutdown: options.shutdown ?? (() => process.kill(process.pid, 'SIGTERM')),
    },
    logger,
    started,
  );
  return { alerts, gpio };
}
