// Work that holds memory or the store for a while (an export, a GraphQL request) has slots: so many
// at once in all, and fewer for one user, so one viewer cannot take what every other needs.
import { HttpError } from './errors.js';

/** What a refused request is told to wait before trying again. */
export const RETRY_AFTER_SEC = 10;

export class Slots {
  private held = 0;
  private readonly perOwner = new Map<string, number>();

  constructor(
    /** What they are for, in messages: "exports". */
    private readonly what: string,
    private readonly limits: { inAll: number; perOwner: number },
  ) {}

  /** A slot for `owner`, and how to give it back (once); else 429 (its own are taken) or 503 (all are), with Retry-After. */
  take(owner: string): () => void {
    const retry = { 'retry-after': String(RETRY_AFTER_SEC) };
    const own = this.perOwner.get(owner) ?? 0;
    if (own >= this.limits.perOwner) throw new HttpError(429, `too many ${this.what} of yours at once (at most ${this.limits.perOwner}); try again when one has ended`, undefined, retry);
    if (this.held >= this.limits.inAll) throw new HttpError(503, `too many ${this.what} at once (at most ${this.limits.inAll}); try again shortly`, undefined, retry);
    this.held++;
    this.perOwner.set(owner, own + 1);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.held--;
      const left = (this.perOwner.get(owner) ?? 1) - 1;
      if (left > 0) this.perOwner.set(owner, left);
      else this.perOwner.delete(owner);
    };
  }
}
