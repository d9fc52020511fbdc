// A machine's clocks for tests: the interface the system clock implements (agent/ingest/clock.ts),
// with a wall clock a test steps. Stepping this machine's real clock would disturb every other
// process on it, so the agent is given this source instead.
import type { ClockSource } from '../../agent/ingest/clock.js';

/** Monotonic time runs with the real one; the wall clock is monotonic + offset, which a test moves. */
export class TestClock implements ClockSource {
  offset: number;
  state: boolean | undefined = false;
  /** Added to the monotonic clock (to pass a hold's time without waiting). */
  skipped = 0;
  readonly via = 'test';

  constructor(
    readonly bootId: string,
    wallNow: number,
  ) {
    this.offset = wallNow - this.monoMs();
  }

  monoMs(): number {
    return Math.floor(performance.now()) + 1_000_000 + this.skipped;
  }

  wallMs(): number {
    return this.monoMs() + this.offset;
  }

  synced(): boolean | undefined {
    return this.state;
  }

  /** The wall clock jumps to `wallNow` (an NTP step). */
  set(wallNow: number): void {
    this.offset = wallNow - this.monoMs();
  }
}
