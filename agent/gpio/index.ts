// GPIO: input lines become readings (through ingest, like MQTT ones), a status LED shows the agent's
// state, an alarm output follows the alerts, and a UPS HAT's power-fail input flushes the log and
// shuts down cleanly. Everything goes through a GpioDriver: onoff on sysfs, or simulated.
import { execFile } from 'node:child_process';
import type { Logger } from 'pino';
import type { GpioConfig } from './config.js';
import type { GpioDriver, Level, OutputLine } from './driver.js';
import { openInput, type DebouncedInput, type Edge } from './inputs.js';
import { ledState, StatusLed, type LedInputs, type LedState } from './led.js';
import { SimulatedGpio } from './simulated-driver.js';
import { sysfsDriver } from './sysfs-driver.js';

export type { GpioConfig } from './config.js';
export type { GpioDriver, Level } from './driver.js';
export { SimulatedGpio } from './simulated-driver.js';
export { ledState, LED_PATTERNS, type LedState } from './led.js';

/** What GPIO needs of the rest of the agent. */
export interface GpioSources {
  /** Take a reading as ingest takes an MQTT one; resolves once it is durable (or dead-lettered). */
  take(topic: string, payload: Buffer): Promise<void>;
  ledInputs(): Promise<LedInputs>;
  alertsFiring(): string[];
  /** Commit to disk everything taken so far. */
  flush(): Promise<void>;
  /** Stop the agent cleanly. */
  shutdown(reason: string): void;
}

export interface GpioStatus {
  driver: string;
  inputs: { name: string; line: number; value: Level; changes: number; lastChange: string | null }[];
  statusLed: LedState | null;
  alarm: boolean | null;
  powerFail: 'ok' | 'failing' | null;
}

export interface GpioRunning {
  status(): GpioStatus;
  stop(): void;
}

/** How often the LED's state and the alarm are looked at again. */
const OUTPUT_EVERY_MS = 2000;

export async function openDriver(config: GpioConfig): Promise<GpioDriver | undefined> {
  if (config.driver === 'none') return undefined;
  return config.driver === 'simulated' ? new SimulatedGpio() : sysfsDriver(config.sysfsPath, config.chip);
}

export function startGpio(config: GpioConfig, driver: GpioDriver, sources: GpioSources, logger: Logger): GpioRunning {
  const closers: (() => void)[] = [];
  const inputs = config.inputs.map((spec) => {
    const topic = spec.topic ?? `gpio/${spec.name}`;
    const status = {
      name: spec.name,
      line: spec.line,
      changes: 0,
      lastChange: null as string | null,
      input: undefined as DebouncedInput | undefined,
    };
    const changed = (value: Level, edge: Edge) => {
      status.changes++;
      status.lastChange = new Date().toISOString();
      sources
        .take(topic, Buffer.from(JSON.stringify({ value, edge })))
        .catch((err: Error) => logger.error({ input: spec.name, value, edge, err: err.message }, 'a GPIO reading could not be taken'));
    };
    status.input = openInput(driver, spec, changed);
    closers.push(() => status.input?.close());
    return status;
  });

  const led =
    config.statusLed && new StatusLed(driver.output(config.statusLed.line, config.statusLed.activeLow ? 1 : 0), config.statusLed.activeLow);
  if (led) closers.push(() => led.close());
  const alarm = config.alarm && { out: driver.output(config.alarm.line, config.alarm.activeLow ? 1 : 0), on: false };
  const alarmAlerts = config.alarm?.alerts ?? [];
  const sounds = (name: string) =>
    alarmAlerts.length === 0 || alarmAlerts.some((a) => (a.endsWith('*') ? name.startsWith(a.slice(0, -1)) : name === a));
  const drive = (out: OutputLine, on: boolean, activeLow: boolean) => out.write((on !== activeLow ? 1 : 0) as Level);
  if (alarm) closers.push(() => (drive(alarm.out, false, config.alarm!.activeLow), alarm.out.close()));

  let looking = false;
  const look = async () => {
    if (looking) return;
    looking = true;
    try {
      if (led) led.set(ledState(await sources.ledInputs()));
      if (alarm) {
        const on = sources.alertsFiring().some(sounds);
        if (on !== alarm.on) drive(alarm.out, (alarm.on = on), config.alarm!.activeLow);
      }
    } catch (err) {
      logger.warn({ err: (err as Error).message }, "GPIO outputs: could not read the agent's state");
    } finally {
      looking = false;
    }
  };
  if (led || alarm) {
    void look();
    const timer = setInterval(() => void look(), OUTPUT_EVERY_MS);
    closers.push(() => clearInterval(timer));
  }

  let powerFail: DebouncedInput | undefined;
  let failing = false;
  if (config.powerFail) {
    const { command } = config.powerFail;
    powerFail = openInput(driver, { ...config.powerFail, edge: 'rising' }, () => {
      if (failing) return;
      failing = true;
      logger.warn({ command }, 'power failing: flushing the log and shutting down');
      sources
        .flush()
        .catch((err: Error) => logger.error({ err: err.message }, 'flushing the log before shutdown failed'))
        .finally(() => {
          if (!command.length) return sources.shutdown('power fail');
          execFile(command[0], command.slice(1), { timeout: 30_000 }, (err) => {
            if (err) logger.error({ err: err.message }, 'the power-fail command failed: stopping the agent instead');
            if (err) sources.shutdown('power fail');
          });
        });
    });
    closers.push(() => powerFail?.close());
  }
  logger.info(
    { driver: driver.description, inputs: inputs.length, statusLed: !!led, alarm: !!alarm, powerFail: !!powerFail },
    'GPIO ready',
  );

  return {
    status: () => ({
      driver: driver.description,
      inputs: inputs.map(({ input, ...s }) => ({ ...s, value: input!.value })),
      statusLed: led ? led.current : null,
      alarm: alarm ? alarm.on : null,
      powerFail: powerFail ? (failing || powerFail.value ? 'failing' : 'ok') : null,
    }),
    stop() {
      for (const close of closers.reverse()) close();
      driver.close();
    },
  };
}
