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

/** How often the LED's state and the alarm are looked at again. */
const OUTPUT_EVERY_MS = 2000;

export async function openDriver(config: GpioConfig): Promise<GpioDriver | undefined> {
  if (config.driver === 'none') return undefined;
  return config.driver === 'simulated' ? new SimulatedGpio() : sysfsDriver(config.sysfsPath, config.chip);
}

interface InputStatus {
  name: string;
  line: number;
  changes: number;
  lastChange: string | null;
  input?: DebouncedInput;
}

/** The configured lines, running: inputs taken as readings, the status LED and the alarm driven, the power-fail input watched. */
export class GpioLines {
  private readonly closers: (() => void)[] = [];
  private readonly inputs: InputStatus[];
  private readonly led: StatusLed | undefined;
  private readonly alarm: { out: OutputLine; on: boolean; activeLow: boolean; alerts: string[] } | undefined;
  private readonly powerFail: DebouncedInput | undefined;
  private failing = false;
  private looking = false;

  constructor(
    config: GpioConfig,
    private readonly driver: GpioDriver,
    private readonly sources: GpioSources,
    private readonly logger: Logger,
  ) {
    this.inputs = config.inputs.map((spec) => this.openReadingInput(spec));
    const { statusLed, alarm, powerFail } = config;
    this.led = statusLed && new StatusLed(driver.output(statusLed.line, statusLed.activeLow ? 1 : 0), statusLed.activeLow);
    const led = this.led;
    if (led) this.closers.push(() => led.close());
    if (alarm) {
      const a = {
        out: driver.output(alarm.line, alarm.activeLow ? 1 : 0),
        on: false,
        activeLow: alarm.activeLow,
        alerts: alarm.alerts ?? [],
      };
      this.alarm = a;
      this.closers.push(() => (drive(a.out, false, a.activeLow), a.out.close()));
    }
    if (this.led || this.alarm) {
      void this.look();
      const timer = setInterval(() => void this.look(), OUTPUT_EVERY_MS);
      this.closers.push(() => clearInterval(timer));
    }
    if (powerFail) {
      const input = openInput(driver, { ...powerFail, edge: 'rising' }, () => this.powerFailing(powerFail.command));
      this.powerFail = input;
      this.closers.push(() => input.close());
    }
    logger.info(
      { driver: driver.description, inputs: this.inputs.length, statusLed: !!this.led, alarm: !!this.alarm, powerFail: !!this.powerFail },
      'GPIO ready',
    );
  }

  status(): GpioStatus {
    return {
      driver: this.driver.description,
      inputs: this.inputs.map(({ input, ...s }) => ({ ...s, value: input!.value })),
      statusLed: this.led ? this.led.current : null,
      alarm: this.alarm ? this.alarm.on : null,
      powerFail: this.powerFail ? (this.failing || this.powerFail.value ? 'failing' : 'ok') : null,
    };
  }

  stop(): void {
    for (const close of this.closers.reverse()) close();
    this.driver.close();
  }

  /** An input whose changes become readings on its topic, through ingest. */
  private openReadingInput(spec: GpioConfig['inputs'][number]): InputStatus {
    const topic = spec.topic ?? `gpio/${spec.name}`;
    const status: InputStatus = { name: spec.name, line: spec.line, changes: 0, lastChange: null };
    status.input = openInput(this.driver, spec, (value: Level, edge: Edge) => {
      status.changes++;
      status.lastChange = new Date().toISOString();
      this.sources
        .take(topic, Buffer.from(JSON.stringify({ value, edge })))
        .catch((err: Error) => this.logger.error({ input: spec.name, value, edge, err: err.message }, 'a GPIO reading could not be taken'));
    });
    this.closers.push(() => status.input?.close());
    return status;
  }

  /** The LED shows the agent's state; the alarm sounds while an alert it follows fires. */
  private async look(): Promise<void> {
    if (this.looking) return;
    this.looking = true;
    try {
      if (this.led) this.led.set(ledState(await this.sources.ledInputs()));
      const alarm = this.alarm;
      if (alarm) {
        const sounds = (name: string) =>
          alarm.alerts.length === 0 || alarm.alerts.some((a) => (a.endsWith('*') ? name.startsWith(a.slice(0, -1)) : name === a));
        const on = this.sources.alertsFiring().some(sounds);
        if (on !== alarm.on) drive(alarm.out, (alarm.on = on), alarm.activeLow);
      }
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, "GPIO outputs: could not read the agent's state");
    } finally {
      this.looking = false;
    }
  }

  /** Once: flush the log, then run the command (or stop the agent when there is none, or it fails). */
  private powerFailing(command: string[]): void {
    if (this.failing) return;
    this.failing = true;
    const { logger, sources } = this;
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
  }
}

const drive = (out: OutputLine, on: boolean, activeLow: boolean) => out.write((on !== activeLow ? 1 : 0) as Level);
