// The one fault policy of the log's consumers. An error belongs either to records (the consumer
// refuses what they hold: retrying will never help, so they are found and dead-lettered) or to the
// moment (disk full, I/O, connection: retried with backoff until it passes).

/** The consumer refused one or more records of a batch for what they hold. */
export class RecordFault extends Error {
  override readonly name = 'RecordFault';
}

/**
 * A consumer's health, as /health/ready and `sync status` show it: `retrying` an error of the moment,
 * `stuck` when that has lasted STUCK_AFTER_MS, `down` when a person must act (credentials, a missing
 * database); each is still retried.
 */
export type ConsumerState = 'ok' | 'retrying' | 'stuck' | 'down';

export interface ConsumerHealth {
  state: ConsumerState;
  /** When the state last changed (ISO 8601). */
  since: string;
  lastError?: { message: string; at: string };
}

/** How long a consumer fails without a success before it is reported `stuck`. */
export const STUCK_AFTER_MS = 60_000;

const text = (err: unknown) => {
  const e = err as Error & { cause?: Error; code?: unknown };
  return `${typeof e.code === 'string' ? `${e.code}: ` : ''}${e.message}${e.cause ? `: ${e.cause.message}` : ''}`;
};

/** A full disk, as LevelDB, SQLite or Node say it. */
const DISK_FULL = /No space left|ENOSPC|SQLITE_FULL|database or disk is full/i;
/** Other errors of the disk: I/O, read-only. */
const DISK_TROUBLE = /IO error|I\/O error|Input\/output|EIO|SQLITE_IOERR|EROFS|Read-only file system/i;

/** An error of the disk (full, I/O, read-only). */
export function isDiskError(err: unknown): boolean {
  const t = text(err);
  return DISK_FULL.test(t) || DISK_TROUBLE.test(t);
}

/** An error as a person reads it: `disk full` when it is that, else the message with its cause. */
export function describeDiskError(err: unknown): string {
  return DISK_FULL.test(text(err)) ? 'disk full' : text(err);
}
