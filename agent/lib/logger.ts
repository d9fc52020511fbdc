import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** JSON lines on stdout (or lines for people, through `to`); credentials never reach a log line. */
export function createLogger(level: string, to?: DestinationStream): Logger {
  const options = {
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['password', '*.password', 'passphrase', '*.passphrase', 'token', '*.token'], censor: '***' },
  };
  return to ? pino(options, to) : pino(options);
}

/** Where `log.format` sends lines: undefined for JSON; pino-pretty (loaded only then) for people. */
export async function logDestination(format: 'auto' | 'pretty' | 'json'): Promise<DestinationStream | undefined> {
  if (format === 'json' || (format === 'auto' && !process.stdout.isTTY)) return undefined;
  const { default: pretty } = await import('pino-pretty');
  return pretty({
    sync: true,
    colorize: Boolean(process.stdout.isTTY),
    translateTime: 'SYS:HH:MM:ss',
    ignore: 'pid,hostname',
    singleLine: true,
  });
}
