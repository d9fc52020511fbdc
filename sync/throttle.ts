// Bandwidth cap for metered links: a token bucket in bytes, refilled at `bytesPerSec`, holding at
// most one second's worth. A request larger than the bucket waits until it has been paid off.

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

/** setTimeout as a promise that an abort ends early (resolving, not rejecting: callers check why). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
