// Exponential backoff with full jitter (AWS style): the next wait is random in [0, min(cap, base * 2^n)],
// so many agents coming back after one outage do not retry in step.

export class Backoff {
  private attempt = 0;

  constructor(
    private readonly baseMs: number,
    private readonly capMs: number,
    private readonly random: () => number = Math.random,
  ) {}

  /** The wait before the next try; at least a tenth of the ceiling, so a failure never spins. */
  next(): number {
    const ceiling = Math.min(this.capMs, this.baseMs * 2 ** Math.min(this.attempt++, 30));
    return Math.round(ceiling * (0.1 + 0.9 * this.random()));
  }

  reset(): void {
    this.attempt = 0;
  }

  get failures(): number {
    return this.attempt;
  }
}
