// What stands before a login: a cap on connections that have not logged in (in all, shared out
// between source addresses, and per address), failed logins throttled (login-failures.ts: a
// growing delay, then a ban, as fail2ban or EMQX's flapping detection do, without locking a user
// out), and password hashing run a few at a time, so a flood of wrong passwords cannot take the
// cores from the sensors that are already connected.
import type { Duplex } from 'node:stream';
import type { Logger } from './logger.js';
import { LoginFailures, type FailureLimits } from './login-failures.js';

export interface LoginLimits extends FailureLimits {
  /** Connections that have not logged in yet, in all. */
  maxPendingLogins: number;
  /** Connections that have not logged in yet, from one source address. */
  maxPendingPerAddress: number;
  /** Password checks run at once (each is ~50 ms of scrypt on a core). */
  hashConcurrency: number;
}

export type LoginVerdict<T> = { ok: true; value: T; banned?: undefined } | { ok: false; banned?: string };

export class LoginGuard {
  private readonly pending = new Map<Duplex, string>();
  private readonly pendingByAddress = new Map<string, number>();
  private readonly failures: LoginFailures;
  private readonly turns = new Turns();
  private hashing = 0;
  /** The check slot kept for addresses a login succeeded from is in use. */
  private reservedBusy = false;
  /** Waiting connections closed to give their slot to another address. */
  evicted = 0;
  private readonly hashQueue: (() => void)[] = [];

  constructor(
    private readonly limits: LoginLimits,
    logger: Logger,
    now: () => number = Date.now,
  ) {
    this.failures = new LoginFailures(limits, (notice) => logger.warn(notice, 'login banned after repeated failures'), now);
  }

  /**
   * A new connection: false when its address holds its share (it is closed at once). When every
   * slot is taken, the oldest waiting connection of the address holding the most gives its slot to
   * an address holding fewer, so a few addresses cannot shut every other one out; and one of an
   * address nobody has logged in from gives its slot to an address somebody has, so that as many
   * addresses as there are slots (64 aliases on one attacker's interface) cannot shut out the
   * sensors that logged in before.
   */
  admit(conn: Duplex, address: string): boolean {
    const fromHere = this.pendingByAddress.get(address) ?? 0;
    if (fromHere >= this.limits.maxPendingPerAddress) return false;
    if (this.pending.size >= this.limits.maxPendingLogins && !this.evictFor(fromHere) && !this.evictStrangerFor(address)) return false;
    this.pending.set(conn, address);
    this.pendingByAddress.set(address, fromHere + 1);
    conn.once('close', () => this.loggedIn(conn));
    return true;
  }

  /** The connection logged in (or is gone): it no longer counts as waiting. */
  loggedIn(conn: Duplex): void {
    const address = this.pending.get(conn);
    if (address === undefined) return;
    this.pending.delete(conn);
    const left = (this.pendingByAddress.get(address) ?? 1) - 1;
    if (left > 0) this.pendingByAddress.set(address, left);
    else this.pendingByAddress.delete(address);
  }

  /** Close the oldest waiting connection of the address holding the most, if it holds more than `fromHere` + 1. */
  private evictFor(fromHere: number): boolean {
    let top: string | undefined;
    for (const [address, n] of this.pendingByAddress) if (top === undefined || n > this.pendingByAddress.get(top)!) top = address;
    if (top === undefined || this.pendingByAddress.get(top)! <= fromHere + 1) return false;
    return this.closeOldest((address) => address === top);
  }

  /** For an address a login succeeded from: close the oldest waiting connection of an address none did. */
  private evictStrangerFor(address: string): boolean {
    return this.failures.knownAddress(address) && this.closeOldest((from) => !this.failures.knownAddress(from));
  }

  /** Close the oldest waiting connection whose address `which` picks; false if none. */
  private closeOldest(which: (address: string) => boolean): boolean {
    for (const [conn, address] of this.pending) {
      if (!which(address)) continue;
      this.loggedIn(conn);
      conn.destroy();
      this.evicted++;
      return true;
    }
    return false;
  }

  get waiting(): number {
    return this.pending.size;
  }

  /** Why a login from here, as this user, is refused outright (a ban); undefined if it may try. */
  banned(address: string, username: string | undefined): string | undefined {
    return this.failures.banned(address, username);
  }

  /**
   * One login: refused outright when banned; else it waits its delay (and, for a user name under
   * attack, its turn), then `verify` runs in a hashing slot. A wrong password (null) is a failure.
   * `gone`: the client left while it waited (its connection closed, or was given to another
   * address): its password is not checked (LoginAbandoned), so a flood's dropped connections do not
   * keep the hashing slot busy ahead of the logins still waiting.
   */
  async login<T>(
    address: string,
    username: string | undefined,
    verify: () => Promise<T | null> | T | null,
    gone: () => boolean = () => false,
  ): Promise<LoginVerdict<T>> {
    const attempt = this.failures.start(address, username);
    if (attempt.banned) return { ok: false, banned: attempt.banned };
    const checked = async () => {
      if (attempt.delayMs) await new Promise((r) => setTimeout(r, attempt.delayMs));
      return await this.hash(async () => {
        if (gone()) throw new LoginAbandoned('the connection closed before its password was checked');
        return await verify();
      }, attempt.known);
    };
    let value: T | null;
    try {
      value = attempt.takesTurns ? await this.turns.take(username!, checked) : await checked();
    } catch (err) {
      this.failures.abandoned(address, username); // the check broke: no verdict on the password
      throw err;
    }
    if (value === null) {
      this.failures.failed(address, username);
      return { ok: false };
    }
    this.failures.succeeded(address, username);
    return { ok: true, value };
  }

  /** A check that costs nothing (an API key's hash): counted and banned alike, without delay or slot. */
  loginNow<T>(address: string, username: string | undefined, verify: () => T | null): LoginVerdict<T> {
    const attempt = this.failures.start(address, username);
    if (attempt.banned) return { ok: false, banned: attempt.banned };
    const value = verify();
    if (value === null) this.failures.failed(address, username);
    else this.failures.succeeded(address, username);
    return value === null ? { ok: false } : { ok: true, value };
  }

  /**
   * Run a password check when a slot is free (hashConcurrency at a time). A login from an address a
   * login succeeded from (`known`) goes first, and when the slots are taken it has one more of its
   * own: a flood of strangers' checks, back to back, would otherwise make a sensor wait for the check
   * in progress (80-150 ms of scrypt on a busy 2-core machine) before its own.
   */
  async hash<T>(work: () => Promise<T>, known = false): Promise<T> {
    const full = this.hashing >= this.limits.hashConcurrency;
    const reserved = known && full && !this.reservedBusy;
    if (reserved) this.reservedBusy = true;
    else if (full) await new Promise<void>((resolve) => (known ? this.hashQueue.unshift(resolve) : this.hashQueue.push(resolve)));
    if (!reserved) this.hashing++;
    try {
      return await work();
    } finally {
      if (reserved) this.reservedBusy = false;
      else {
        this.hashing--;
        this.hashQueue.shift()?.();
      }
    }
  }
}

/** A login whose client left before its check: no verdict on the password, and no answer to give. */
export class LoginAbandoned extends Error {}

/** Work on one key run one at a time, in order. */
class Turns {
  private readonly tails = new Map<string, Promise<unknown>>();

  async take<T>(key: string, work: () => Promise<T>): Promise<T> {
    const before = this.tails.get(key) ?? Promise.resolve();
    const mine = before.then(work, work);
    const tail = mine.catch(() => undefined);
    this.tails.set(key, tail);
    try {
      return await mine;
    } finally {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
