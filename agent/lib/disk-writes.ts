// SD-card wear: the bytes this process, or one of its threads, caused to be written to storage
// (Linux task I/O accounting, charged to the thread that dirties the page, so the SQLite store's
// worker thread has a count of its own).
import { readFileSync } from 'node:fs';

/** write_bytes of the whole process, or of the calling thread; undefined where /proc does not say. */
export function writtenBytes(scope: 'process' | 'thread'): number | undefined {
  try {
    const io = readFileSync(scope === 'process' ? '/proc/self/io' : '/proc/thread-self/io', 'utf8');
    const m = /^write_bytes: (\d+)$/m.exec(io);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** What `sync status` and the metrics show of it. */
export interface DiskWrites {
  /** Bytes the agent wrote since it started. */
  total: number;
  /** Of those, the local store's (its worker thread, or its own writes). */
  store: number;
  /** Of those, the rollups' (their worker thread). */
  rollups: number;
  /** The log, dead letters and the broker's sessions (LevelDB), and the rest. */
  other: number;
  /** Readings taken in since the start, and total bytes per reading. */
  readings: number;
  bytesPerReading: number | null;
  /** Bytes a day at the rate of the last hour (or since start, once a minute has passed); null before. */
  bytesPerDay: number | null;
  /** The card this means: its size, rated full writes, and the years they last at bytesPerDay (null before it is known). */
  card: { bytes: number; ratedFullWrites: number; lifeYears: number | null };
}

export function diskWrites(
  total: number,
  store: number,
  rollups: number,
  readings: number,
  bytesPerDay: number | null = null,
  card = { bytes: 0, ratedFullWrites: 1000 },
): DiskWrites {
  const lifeYears = bytesPerDay && card.bytes ? Math.round(((card.bytes * card.ratedFullWrites) / bytesPerDay / 365) * 10) / 10 : null;
  return {
    total,
    store,
    rollups,
    other: Math.max(0, total - store - rollups),
    readings,
    bytesPerReading: readings > 0 ? Math.round(total / readings) : null,
    bytesPerDay: bytesPerDay === null ? null : Math.round(bytesPerDay),
    card: { ...card, lifeYears },
  };
}

/** A minute's samples of the bytes written, an hour of them: the rate the card is written at now. */
export class WriteRate {
  private readonly samples: { at: number; total: number }[] = [];

  constructor(private readonly now: () => number = Date.now) {}

  sample(total: number): void {
    const at = this.now();
    this.samples.push({ at, total });
    while (this.samples.length > 2 && at - this.samples[0].at > 3_600_000) this.samples.shift();
  }

  /** Bytes a day over the samples kept (at least a minute of them); null before. */
  perDay(total: number): number | null {
    const first = this.samples[0];
    const seconds = first ? (this.now() - first.at) / 1000 : 0;
    return seconds >= 60 ? ((total - first.total) / seconds) * 86400 : null;
  }
}
