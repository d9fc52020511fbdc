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
}

export function diskWrites(total: number, store: number, rollups: number, readings: number): DiskWrites {
  return { total, store, rollups, other: Math.max(0, total - store - rollups), readings, bytesPerReading: readings > 0 ? Math.round(total / readings) : null };
}
