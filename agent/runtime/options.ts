import type { GpioDriver } from '../gpio/index.js';
import type { Config } from '../config-schema.js';
import type { ClockSource } from '../ingest/clock.js';

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
