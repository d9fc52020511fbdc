// Each client's requests at a pace, as nginx's limit_req with a burst and a delay: one user or API
// key (an address, for requests without valid credentials) is answered at once up to `burst` ahead
// of `perSecond`; a request beyond waits its turn, so a client that asks again as soon as it is
// answered (whatever the answer: 200, 401, 429) is slowed to the pace instead of taking the main
// thread with its requests. Too many waiting: 429 with Retry-After, itself answered no sooner.
import { setImmediate as afterIo, setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { sendError } from './errors.js';

/** Clients kept before the idle ones (nothing in excess) are forgotten. */
const SWEEP_AT = 1000;

export class Pace {
  /** A client's requests beyond the pace (nginx's "excess"), as of `at` (performance.now()). */
  private readonly clients = new Map<string, { excess: number; at: number }>();

  constructor(
    readonly perSecond: number,
    readonly burst: number,
  ) {}

  /** How long (ms) a request of `client` waits before it is answered; Infinity: too many of its own wait already. */
  admit(client: string, now = performance.now()): number {
    if (this.clients.size >= SWEEP_AT) this.sweep(now);
    const seen = this.clients.get(client);
    const excess = (seen ? this.drained(seen, now) : 0) + 1;
    if (excess > 2 * this.burst) return Infinity;
    this.clients.set(client, { excess, at: now });
    return excess <= this.burst ? 0 : ((excess - this.burst) * 1000) / this.perSecond;
  }

  /** The longest a request waits: what a refused one is told to wait (and waits). */
  get longestWaitMs(): number {
    return (this.burst * 1000) / this.perSecond;
  }

  private drained(seen: { excess: number; at: number }, now: number): number {
    return Math.max(0, seen.excess - ((now - seen.at) * this.perSecond) / 1000);
  }

  private sweep(now: number): void {
    for (const [client, seen] of this.clients) if (this.drained(seen, now) === 0) this.clients.delete(client);
  }
}

/** Who a request counts against: its user or API key once known, else its address. */
function clientOf(req: FastifyRequest): string {
  return req.identity ? `identity ${req.identity.name}` : `address ${req.ip}`;
}

/** Every request waits its client's turn; registered after authentication has said who is asking. */
export function paceRequests(app: FastifyInstance, pace: Pace): void {
  app.addHook('onRequest', async (req, reply) => {
    const wait = pace.admit(clientOf(req));
    if (wait === 0) return;
    const refused = wait === Infinity;
    await sleep(refused ? pace.longestWaitMs : wait, undefined, { ref: false });
    await afterIo(); // timers run before I/O: a close that came with the timer is seen first
    // Gone while it waited: nothing to answer, nothing to do.
    if (req.raw.socket.destroyed) return reply.hijack();
    if (refused)
      return sendError(
        reply.header('retry-after', String(Math.ceil(pace.longestWaitMs / 1000))),
        429,
        `too many requests of yours waiting: ${pace.burst} are answered at once, then ${pace.perSecond} a second (web.limits.requestBurst, requestsPerSecond)`,
      );
  });
}
