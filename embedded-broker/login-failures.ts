// Failed logins, counted when an attempt starts (so parallel guesses cannot all get in before the
// first one fails) and kept three ways:
// - per user name at one address: a growing delay, then a ban of that pair (the guesser alone);
// - per address, whatever the names: a ban after more failures (one host trying many names);
// - per user name from every address: never a ban (anyone could lock a sensor out with its name),
//   but once it has failures, attempts from addresses where that user never logged in take turns,
//   one at a time with the growing delay, so guessing from many addresses gets a few tries a minute.
//   Addresses where the user logged in before skip the turn.

export interface FailureLimits {
  failuresBeforeDelay: number;
  /** Per user name at one address. */
  failuresBeforeBan: number;
  /** Per address, whatever the user names. */
  failuresBeforeAddressBan: number;
  banMs: number;
}

const FIRST_DELAY_MS = 250;
const MAX_DELAY_MS = 8000;
/** Addresses remembered per user as where it logged in before. */
const KNOWN_PER_USER = 32;
/** Addresses remembered as ones a login succeeded from (a Pi's sensors are a few dozen). */
const KNOWN_ADDRESSES = 1024;
const MAX_STREAKS = 10_000;

interface Streak {
  count: number;
  last: number;
  bannedUntil: number;
}

export interface Attempt {
  /** Refused outright, without a password check: why. */
  readonly banned?: string;
  /** The address logged in as this user before. */
  readonly known: boolean;
  /** Wait this long (and for the user's turn) before checking the password. */
  readonly delayMs: number;
  /** Whether it must take turns with other attempts on this user name from new addresses. */
  readonly takesTurns: boolean;
}

export interface BanNotice {
  who: string;
  failures: number;
  banSeconds: number;
}

export class LoginFailures {
  private readonly streaks = new Map<string, Streak>();
  private readonly known = new Map<string, Map<string, number>>();
  /** Addresses some user logged in from, newest last (at most KNOWN_ADDRESSES). */
  private readonly goodAddresses = new Map<string, number>();

  constructor(
    private readonly limits: FailureLimits,
    private readonly onBan: (notice: BanNotice) => void,
    private readonly now: () => number,
  ) {}

  /** Why a login from here, as this user, is refused outright (a ban); undefined if it may try. */
  banned(address: string, username: string | undefined): string | undefined {
    const now = this.now();
    for (const [key, limit] of this.bannable(address, username)) {
      const s = this.current(key, now);
      if (!s) continue;
      if (s.bannedUntil > now) return `${key} is banned for ${Math.ceil((s.bannedUntil - now) / 1000)} s after repeated failed logins`;
      if (s.count >= limit) return `${key} has ${s.count} failed or unfinished logins: wait for them`;
    }
    return undefined;
  }

  /** An attempt starts: it counts as a failure until it succeeds. */
  start(address: string, username: string | undefined): Attempt {
    const banned = this.banned(address, username);
    if (banned) return { banned, known: false, delayMs: 0, takesTurns: false };
    const now = this.now();
    const known = username !== undefined && this.known.get(username)?.has(address) === true;
    const before = Math.max(...this.bannable(address, username).map(([k]) => this.current(k, now)?.count ?? 0));
    const userBefore = username === undefined ? 0 : (this.current(`user ${username}`, now)?.count ?? 0);
    for (const key of this.keys(address, username)) this.count(key, now, +1);
    const takesTurns = !known && userBefore >= this.limits.failuresBeforeDelay;
    const over = Math.max(known ? 0 : userBefore, before) - this.limits.failuresBeforeDelay;
    return { known, delayMs: over < 0 ? 0 : Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** over), takesTurns };
  }

  /** The password was wrong: the counts stay; a limit reached is a ban. */
  failed(address: string, username: string | undefined): void {
    const now = this.now();
    for (const [key, limit] of this.bannable(address, username)) {
      const s = this.streaks.get(key);
      if (s && s.count >= limit && s.bannedUntil <= now) {
        s.bannedUntil = now + this.limits.banMs;
        this.onBan({ who: key, failures: s.count, banSeconds: Math.round(this.limits.banMs / 1000) });
      }
    }
    if (this.streaks.size > MAX_STREAKS) this.forgetOld(now);
  }

  /** The password was right: this attempt was no failure, the pair's streak ends, the address is known. */
  succeeded(address: string, username: string | undefined): void {
    this.abandoned(address, username);
    if (username === undefined) return;
    this.streaks.delete(pairKey(address, username));
    const addresses = this.known.get(username) ?? new Map<string, number>();
    addresses.delete(address);
    addresses.set(address, this.now());
    if (addresses.size > KNOWN_PER_USER) addresses.delete(addresses.keys().next().value!);
    this.known.set(username, addresses);
    this.goodAddresses.delete(address);
    this.goodAddresses.set(address, this.now());
    if (this.goodAddresses.size > KNOWN_ADDRESSES) this.goodAddresses.delete(this.goodAddresses.keys().next().value!);
  }

  /** Did some user log in from this address before? */
  knownAddress(address: string): boolean {
    return this.goodAddresses.has(address);
  }

  /** The check could not be made (an error): the attempt no longer counts. */
  abandoned(address: string, username: string | undefined): void {
    const now = this.now();
    for (const key of this.keys(address, username)) this.count(key, now, -1);
  }

  private keys(address: string, username: string | undefined): string[] {
    return username === undefined ? [`address ${address}`] : [`address ${address}`, pairKey(address, username), `user ${username}`];
  }

  private bannable(address: string, username: string | undefined): [string, number][] {
    const byAddress: [string, number] = [`address ${address}`, this.limits.failuresBeforeAddressBan];
    return username === undefined ? [byAddress] : [byAddress, [pairKey(address, username), this.limits.failuresBeforeBan]];
  }

  /** The streak, unless it went quiet for banMs (then it is forgotten). */
  private current(key: string, now: number): Streak | undefined {
    const s = this.streaks.get(key);
    if (s && s.bannedUntil <= now && now - s.last > this.limits.banMs) {
      this.streaks.delete(key);
      return undefined;
    }
    return s;
  }

  private count(key: string, now: number, by: 1 | -1): void {
    const s = this.current(key, now) ?? { count: 0, last: now, bannedUntil: 0 };
    s.count = Math.max(0, s.count + by);
    if (by > 0) s.last = now;
    this.streaks.set(key, s);
  }

  private forgetOld(now: number): void {
    for (const key of [...this.streaks.keys()]) this.current(key, now);
  }
}

function pairKey(address: string, username: string): string {
  return `user ${username} at ${address}`;
}
