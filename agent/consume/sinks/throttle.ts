// Bandwidth cap for metered links: a token bucket in bytes, refilled at `bytesPerSec`, holding at
// most one second's worth. A request larger than the bucket waits until it has been paid off.
import { sleep } from '../../lib/sleep.js';

export class Throttle {
  private tokens: number;
  private last = performance.now();

  constructor(private readonly bytesPerSec: number) {
    this.tokens = bytesPerSec;
  }

  /** Resolves when `bytes` may be sent; 0 bytesPerSec = no cap. */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (this.bytesPerSec <= 0) return;
    this.refill();
    this.tokens -= bytes;
    if (this.tokens >= 0) return;
    const waitMs = (-this.tokens / this.bytesPerSec) * 1000;
    await sleep(waitMs, signal);
  }

  private refill(): void {
    const now = performance.now();
    this.tokens = Math.min(this.bytesPerSec, this.tokens + ((now - this.last) / 1000) * this.bytesPerSec);
    this.last = now;
  }
}
