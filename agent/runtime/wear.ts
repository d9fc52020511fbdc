// SD-card wear: what the agent wrote since it started, and the rate it writes at now.
import { diskWrites, writtenBytes, WriteRate, type DiskWrites } from '../lib/disk-writes.js';

export interface WearParts {
  /** Bytes written by the store's and the rollups' threads. */
  store(): number;
  rollups(): number;
  /** Readings taken in. */
  readings(): number;
  card(): { bytes: number; ratedFullWrites: number };
}

export class WearMeter {
  /** Counted from construction: start-up's own writes (opening the log) are the agent's too. */
  private readonly atStart = writtenBytes('process') ?? 0;
  private readonly rate = new WriteRate();
  private timer: NodeJS.Timeout | undefined;
  private parts: WearParts | undefined;

  /** The rate the card is written at now: sampled each minute, the last hour kept (start-up's writes age out). */
  start(parts: WearParts): void {
    this.parts = parts;
    this.rate.sample(this.total());
    this.timer = setInterval(() => this.rate.sample(this.total()), 60_000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  report(): DiskWrites {
    const p = this.parts;
    if (!p) return diskWrites(0, 0, 0, 0);
    const total = this.total();
    return diskWrites(total, p.store(), p.rollups(), p.readings(), this.rate.perDay(total), p.card());
  }

  private total(): number {
    return (writtenBytes('process') ?? this.atStart) - this.atStart;
  }
}
