// What stands before a login: a cap on connections that have not logged in (in all, shared out
// between source addresses, and per address), failed logins throttled per source address and per user name (a growing delay, then a
// ban, as fail2ban or EMQX's flapping detection do), and password hashing run a few at a time, so a
// flood of wrong passwords cannot take the cores from the sensors that are already connected.
import type { Duplex } from 'node:stream';
import type { Logger } from './logger.js';

export interface LoginLimits {
  /** Connections that have not logged in yet, in all. */
  maxPendingLogins: number;
  /** Connections that have not logged in yet, from one source address. */
  maxPendingPerAddress: number;
  /** Failed logins (per address or user name) before each further attempt waits. */
  failuresBeforeDelay: number;
  /** Failed logins (per address or user name) that ban it for banMs. */
  failuresBeforeBan: number;
  banMs: number;
  /** Password checks run at once (each is ~50 ms of scrypt on a core). */
  hashConcurrency: number;
}

const FIRST_DELAY_MS = 250;
const MAX_DELAY_MS = 8000;

interface Failures {
  count: number;
  last: number;
  bannedUntil: number;
}

export class LoginGuard {
  private readonly pending = new Map<Duplex, string>();
  private readonly pendingByAddress = new Map<string, number>();
  private readonly failures = new Map<string, Failures>();
  private hashing = 0;
  /** Waiting connections closed to give their slot to another address. */
  evicted = 0;
  private readonly hashQueue: (() => void)[] = [];

  constructor(
    private readonly limits: LoginLimits,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * A new connection: false when its address holds its share (it is closed at once). When every
   * slot is taken, the oldest waiting connection of the address holding the most gives its slot to
   * an address holding fewer, so a few addresses cannot shut every other one out.
   */
  admit(conn: Duplex, address: string): boolean {
    const fromHere = this.pendingByAddress.get(address) ?? 0;
    if (fromHere >= this.limits.maxPendingPerAddress) return false;
    if (this.pending.size >= this.limits.maxPendingLogins && !this.evictFor(fromHere)) return false;
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
    for (const [conn, address] of this.pending) {
      if (address !== top) continue;
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
    for (const key of keys(address, username)) {
      const f = this.failures.get(key);
      if (f && f.bannedUntil > this.now()) return `${key} is banned for ${Math.ceil((f.bannedUntil - this.now()) / 1000)} s after repeated failed logins`;
    }
    return undefined;
  }

  /** How long this attempt waits before its password is checked (grows with the failures). */
  delayMs(address: string, username: string | undefined): number {
    const count = Math.max(0, ...keys(address, username).map((k) => this.failures.get(k)?.count ?? 0));
    const over = count - this.limits.failuresBeforeDelay;
    return over < 0 ? 0 : Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** over);
  }

  failed(address: string, username: string | undefined): void {
    const now = this.now();
    for (const key of keys(address, username)) {
      const f = this.failures.get(key) ?? { count: 0, last: 0, bannedUntil: 0 };
      if (now - f.last > this.limits.banMs) f.count = 0; // an old streak is forgotten
      f.count++;
      f.last = now;
      if (f.count >= this.limits.failuresBeforeBan && f.bannedUntil <= now) {
        f.bannedUntil = now + this.limits.banMs;
        this.log.warn({ who: key, failures: f.count, banSeconds: Math.round(this.limits.banMs / 1000) }, 'login banned after repeated failures');
      }
      this.failures.set(key, f);
    }
    if (this.failures.size > 10_000) this.forgetOld(now);
  }

  succeeded(address: string, username: string | undefined): void {
    for (const key of keys(address, username)) this.failures.delete(key);
  }

  /** Run a password check when a slot is free (a few at a time). */
  async hash<T>(work: () => Promise<T>): Promise<T> {
    if (this.hashing >= this.limits.hashConcurrency) await new Promise<void>((resolve) => this.hashQueue.push(resolve));
    this.hashing++;
    try {
      return await work();
    } finally {
      this.hashing--;
      this.hashQueue.shift()?.();
    }
  }

  private forgetOld(now: number): void {
    for (const [key, f] of this.failures) if (now - f.last > this.limits.banMs && f.bannedUntil <= now) this.failures.delete(key);
  }
}

function keys(address: string, username: string | undefined): string[] {
  return username === undefined ? [`address ${address}`] : [`address ${address}`, `user ${username}`];
}
