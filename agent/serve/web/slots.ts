// Work that holds memory or the store for a while (an export, a GraphQL request) has slots: so many
// at once in all, and fewer for one user, so one viewer cannot take what every other needs.
import { HttpError } from './errors.js';
import { Tally } from './tally.js';

/** What a refused request is told to wait before trying again. */
export const RETRY_AFTER_SEC = 10;

export class Slots {
  private held = 0;
  private readonly perOwner = new Tally();

  constructor(
    /** What they are for, in messages: "exports". */
    private readonly what: string,
    private readonly limits: { inAll: number; perOwner: number },
  ) {}

  /** A slot for `owner`, and how to give it back (once); else 429 (its own are taken) or 503 (all are), with Retry-After. */
  take(owner: string): () => void {
    const retry = { 'retry-after': String(RETRY_AFTER_SEC) };
    if (this.perOwner.of(owner) >= this.limits.perOwner)
      throw new HttpError(
        429,
        `too many ${this.what} of yours at once (at most ${this.limits.perOwner}); try again when one has ended`,
        undefined,
        retry,
      );
    if (this.held >= this.limits.inAll)
      throw new HttpError(503, `too many ${this.what} at once (at most ${this.limits.inAll}); try again shortly`, undefined, retry);
    this.held++;
    this.perOwner.add(owner);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.held--;
      this.perOwner.remove(owner);
    };
  }
}
