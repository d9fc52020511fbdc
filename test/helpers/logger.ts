// The one logger that says nothing, for parts under test (a test that reads what is logged spreads
// it and replaces the level it reads).
import type { Logger } from '../../agent/lib/logger.js';

export const quiet: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => quiet,
} as unknown as Logger;
