import { pino, type Logger } from 'pino';

export type { Logger };

/** JSON lines on stdout; credentials never reach a log line. */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['password', '*.password', 'passphrase', '*.passphrase', 'token', '*.token'], censor: '***' },
  });
}
