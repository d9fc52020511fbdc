// Before a login: failed attempts counted as they start, throttled then banned (per user name at an
// address, and per address), never a user name banned everywhere; logged once per ban; connections that have not logged in capped in all and per address, CONNECT
// kept small, so a flood of half-CONNECTs cannot grow the agent's memory.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoginFailures, type BanNotice } from '../../embedded-broker/login-failures.js';
import { LoginAbandoned, LoginGuard } from '../../embedded-broker/login-guard.js';
import { cleanup, portOf, spawnAgent, tempDir, writeConfig, type ChildAgent } from '../helpers/agent.js';
import { connect, str } from '../helpers/raw.js';
import { addUser } from '../helpers/users.js';
import { quiet } from '../helpers/logger.js';

/** One raw CONNECT from a chosen loopback source address; the CONNACK code, or 'closed' without one. */
function connackFrom(port: number, localAddress: string, username: string, password: string): Promise<number | 'closed'> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    let got = Buffer.alloc(0);
    socket.on('connect', () => socket.write(connect({ clientId: `c-${localAddress}-${Math.random()}`, username, password })));
    socket.on('data', (d) => {
      got = Buffer.concat([got, d]);
      if (got.length >= 4) {
        socket.destroy();
        resolve(got[3]);
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => resolve('closed'));
  });
}

/** Open a connection that sends half a CONNECT and then nothing; resolves once it is open or closed. */
function halfConnect(port: number, localAddress: string): Promise<net.Socket> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    socket.on('error', () => {});
    socket.on('connect', () => {
      // A CONNECT that says 8,000 bytes follow (just under maxConnectBytes), and sends 7,000 of them.
      socket.write(
        Buffer.concat([Buffer.from([0x10, 0xc0, 0x3e]), str('MQTT'), Buffer.from([4, 2, 0, 60]), Buffer.alloc(7000 - 10, 0x61)]),
      );
      resolve(socket);
    });
    socket.on('close', () => resolve(socket));
  });
}

const rssKb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);

describe('login throttling (LoginGuard)', () => {
  const limits = {
    maxPendingLogins: 8,
    maxPendingPerAddress: 8,
    failuresBeforeDelay: 2,
    failuresBeforeBan: 5,
    failuresBeforeAddressBan: 12,
    banMs: 60_000,
    hashConcurrency: 1,
  };

  it('delays a user name at one address after a few failures, doubling, then bans the pair (logged once); the name stays usable elsewhere', () => {
    const bans: BanNotice[] = [];
    let now = 1_000_000;
    const failures = new LoginFailures(
      limits,
      (b) => bans.push(b),
      () => now,
    );
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      delays.push(failures.start('10.0.0.9', 'eve').delayMs);
      failures.failed('10.0.0.9', 'eve');
    }
    expect(delays).toEqual([0, 0, 250, 500, 1000]);
    expect(failures.banned('10.0.0.9', 'eve')).toMatch(/^user eve at 10\.0\.0\.9 is banned for 60 s/);
    expect(failures.start('10.0.0.9', 'eve').banned).toMatch(/banned/);
    expect(failures.banned('10.0.0.9', 'bob')).toBeUndefined(); // the address itself is not banned yet
    expect(failures.banned('10.0.0.7', 'eve')).toBeUndefined(); // nor the user name elsewhere
    expect(bans).toEqual([{ who: 'user eve at 10.0.0.9', failures: 5, banSeconds: 60 }]);
    now += 61_000;
    expect(failures.banned('10.0.0.9', 'eve')).toBeUndefined();
    expect(failures.start('10.0.0.9', 'eve').delayMs).toBe(0); // the streak went quiet: forgotten
  });

  it('counts an attempt when it starts: 200 parallel wrong passwords check no more than the ban allows', async () => {
    const guard = new LoginGuard({ ...limits, failuresBeforeDelay: 50, hashConcurrency: 4 }, quiet);
    let checks = 0;
    const wrong = () => guard.login('10.0.0.9', 'eve', async () => (checks++, await new Promise((r) => setTimeout(r, 5)), null));
    const verdicts = await Promise.all(Array.from({ length: 200 }, wrong));
    expect(checks).toBe(limits.failuresBeforeBan);
    expect(verdicts.filter((v) => v.banned).length).toBe(200 - limits.failuresBeforeBan);
    expect((await guard.login('10.0.0.8', 'eve', async () => ['sensors'])).ok).toBe(true); // the right password from elsewhere
  });

  it('never bans the user name everywhere: its guessed name gets turns and a delay from new addresses, none from where it logged in before', () => {
    const failures = new LoginFailures(
      { ...limits, failuresBeforeBan: 3 },
      () => {},
      () => 1_000_000,
    );
    failures.start('10.0.0.1', 'alice');
    failures.succeeded('10.0.0.1', 'alice'); // her own address
    for (let host = 20; host < 24; host++) {
      for (let i = 0; i < 3; i++) {
        failures.start(`10.0.0.${host}`, 'alice');
        failures.failed(`10.0.0.${host}`, 'alice');
      }
    }
    expect(failures.banned('10.0.0.1', 'alice')).toBeUndefined();
    const own = failures.start('10.0.0.1', 'alice');
    expect(own).toEqual({ known: true, delayMs: 0, takesTurns: false });
    failures.succeeded('10.0.0.1', 'alice');
    const fresh = failures.start('10.0.0.50', 'alice');
    expect(fresh.banned).toBeUndefined();
    expect(fresh.takesTurns).toBe(true);
    expect(fresh.delayMs).toBe(8000); // 12 failures of the name: 0.25 s doubling, at most 8 s
    expect(failures.start('10.0.0.50', 'bob')).toEqual({ known: false, delayMs: 0, takesTurns: false }); // control: another name
  });

  it('bans an address that tries many user names, after failuresBeforeAddressBan; API keys count there', () => {
    const failures = new LoginFailures(
      limits,
      () => {},
      () => 1_000_000,
    );
    for (let i = 0; i < 11; i++) {
      failures.start('10.0.0.9', `user${i}`);
      failures.failed('10.0.0.9', `user${i}`);
    }
    expect(failures.banned('10.0.0.9', 'someone')).toBeUndefined(); // 11 of 12: not yet
    failures.start('10.0.0.9', undefined);
    failures.failed('10.0.0.9', undefined);
    expect(failures.banned('10.0.0.9', 'someone')).toMatch(/^address 10\.0\.0\.9 is banned/);
    expect(failures.banned('10.0.0.10', 'someone')).toBeUndefined();
  });

  it('an error while checking counts for nothing: no ban from a broken user store', async () => {
    const guard = new LoginGuard({ ...limits, failuresBeforeDelay: 50 }, quiet);
    for (let i = 0; i < 20; i++)
      await expect(guard.login('10.0.0.9', 'eve', () => Promise.reject(new Error('disk')))).rejects.toThrow('disk');
    expect(guard.banned('10.0.0.9', 'eve')).toBeUndefined();
  });

  it('takes turns in order, one at a time, and goes on after a failed turn', async () => {
    const turns: string[] = [];
    const guard = new LoginGuard(
      { ...limits, failuresBeforeDelay: 1, failuresBeforeBan: 100, failuresBeforeAddressBan: 100, banMs: 60_000 },
      quiet,
      () => 0,
    );
    await guard.login('10.0.0.1', 'eve', () => null); // one failure: from now on new addresses take turns (0.25 s, doubling)
    let running = 0;
    const attempt = (host: number) =>
      guard.login(`10.0.0.${host}`, 'eve', async () => {
        expect(++running).toBe(1);
        turns.push(String(host));
        await new Promise((r) => setTimeout(r, 5));
        running--;
        return null;
      });
    await Promise.all([attempt(2), attempt(3)]);
    expect(turns).toEqual(['2', '3']);
  });

  it("skips the check of a client that left while it waited for the slot; the next one's runs, and the skipped one counts for nothing", async () => {
    const guard = new LoginGuard({ ...limits, hashConcurrency: 1, failuresBeforeDelay: 1, failuresBeforeBan: 1 }, quiet);
    const checked: string[] = [];
    let left = false;
    const check = (who: string, ms: number) => async () => {
      checked.push(who);
      await new Promise((r) => setTimeout(r, ms));
      return null;
    };
    const first = guard.login('10.0.0.1', 'a', check('first', 30));
    const leaver = guard.login('10.0.0.2', 'b', check('leaver', 0), () => left);
    const stayer = guard.login('10.0.0.3', 'c', check('stayer', 0), () => false);
    left = true; // its connection closed while the first check ran
    await expect(leaver).rejects.toBeInstanceOf(LoginAbandoned);
    expect(await first).toEqual({ ok: false });
    expect(await stayer).toEqual({ ok: false });
    expect(checked).toEqual(['first', 'stayer']);
    // one failure bans the pair (failuresBeforeBan: 1): the checked ones are, the skipped one is not
    expect(guard.banned('10.0.0.1', 'a')).toBeDefined();
    expect(guard.banned('10.0.0.3', 'c')).toBeDefined();
    expect(guard.banned('10.0.0.2', 'b')).toBeUndefined();
  });

  it("keeps one more check slot for addresses a login succeeded from: a known login does not wait for a stranger's check", async () => {
    const guard = new LoginGuard({ ...limits, hashConcurrency: 1 }, quiet);
    const log: string[] = [];
    const release = new Map<string, () => void>();
    const check = (who: string, known: boolean) =>
      guard.hash(async () => {
        log.push(`${who} started`);
        await new Promise<void>((r) => release.set(who, r));
        log.push(`${who} done`);
      }, known);
    const settle = () => new Promise((r) => setTimeout(r, 10));
    const checks = [check('stranger 1', false), check('stranger 2', false)];
    await settle();
    checks.push(check('known 1', true), check('known 2', true));
    await settle();
    // the control: stranger 2 waits for the slot; known 1 has its own; known 2 waits, ahead of strangers
    expect(log).toEqual(['stranger 1 started', 'known 1 started']);
    release.get('known 1')!();
    await settle();
    expect(log.at(-1)).toBe('known 1 done');
    expect(log).not.toContain('known 2 started'); // the kept slot is for one at a time; known 2 waits in front
    release.get('stranger 1')!();
    await settle();
    expect(log.slice(-2)).toEqual(['stranger 1 done', 'known 2 started']);
    release.get('known 2')!();
    await settle();
    release.get('stranger 2')!();
    await Promise.all(checks);
    expect(log.filter((l) => l.endsWith('started'))).toEqual([
      'stranger 1 started',
      'known 1 started',
      'known 2 started',
      'stranger 2 started',
    ]);
  });

  it('runs password checks a few at a time', async () => {
    const guard = new LoginGuard({ ...limits, hashConcurrency: 2 }, quiet);
    let running = 0;
    let most = 0;
    const work = () =>
      guard.hash(async () => {
        most = Math.max(most, ++running);
        await new Promise((r) => setTimeout(r, 20));
        running--;
      });
    await Promise.all(Array.from({ length: 10 }, work));
    expect(most).toBe(2);
  });

  it('shares the waiting slots out between addresses: a full house gives the newcomer the oldest slot of the address holding most', () => {
    const guard = new LoginGuard({ ...limits, maxPendingPerAddress: 4 }, quiet);
    const conns = (n: number) => Array.from({ length: n }, () => new PassThrough());
    const [a, b] = [conns(4), conns(4)];
    expect([...a.map((c) => guard.admit(c, 'A')), ...b.map((c) => guard.admit(c, 'B'))].every(Boolean)).toBe(true);
    expect(guard.admit(new PassThrough(), 'A')).toBe(false); // A's own cap
    // Full: C comes in, A's oldest goes; then B's oldest (B holds most); then C holds its share.
    const c = conns(3);
    expect(guard.admit(c[0], 'C')).toBe(true);
    expect(a[0].destroyed).toBe(true);
    expect(guard.admit(c[1], 'C')).toBe(true);
    expect(b[0].destroyed).toBe(true);
    expect(guard.admit(c[2], 'C')).toBe(false); // A 3, B 3, C 2: taking another would not be fairer
    expect(guard.waiting).toBe(8);
    expect(guard.evicted).toBe(2);
    expect([...a.slice(1), ...b.slice(1)].some((x) => x.destroyed)).toBe(false);
  });

  it("strangers holding every slot, one each: an address a login succeeded from takes the oldest stranger's slot; another stranger does not", async () => {
    const guard = new LoginGuard({ ...limits, maxPendingLogins: 4 }, quiet);
    expect((await guard.login('K', 'alice', () => true)).ok).toBe(true); // K is known from now on
    const strangers = ['S1', 'S2', 'S3', 'S4'].map((address) => {
      const conn = new PassThrough();
      expect(guard.admit(conn, address)).toBe(true);
      return conn;
    });
    expect(guard.admit(new PassThrough(), 'S5')).toBe(false); // the control: no fairer share to give a stranger
    expect(guard.admit(new PassThrough(), 'K')).toBe(true);
    expect(strangers.map((c) => c.destroyed)).toEqual([true, false, false, false]);
    expect(guard.evicted).toBe(1);
  });
});

describe('before login, through the real broker', () => {
  const dir = tempDir();
  let agent: ChildAgent;
  let port: number;
  beforeAll(async () => {
    const config = writeConfig(dir, {
      broker: { allowAnonymous: false, loginThrottle: { failuresBeforeDelay: 2, failuresBeforeBan: 4, banMs: 60_000 } },
    });
    await addUser(config, 'alice', 'right');
    await addUser(config, 'carol', 'right');
    agent = await spawnAgent(['--config', config]);
    port = portOf(agent.listeners.mqtt);
  });
  afterAll(async () => {
    agent.proc.kill('SIGTERM');
    await agent.exited;
    cleanup(dir);
  });

  it("a guesser is banned for that user name at its address; the user logs in from its own address, the guesser's address as another user", async () => {
    expect(await connackFrom(port, '127.0.0.3', 'alice', 'right')).toBe(0); // alice's own address, known from now on
    const codes: (number | 'closed')[] = [];
    for (let i = 0; i < 4; i++) codes.push(await connackFrom(port, '127.0.0.2', 'alice', `guess-${i}`));
    expect(codes).toEqual([4, 4, 4, 4]);
    expect(await connackFrom(port, '127.0.0.2', 'alice', 'right')).toBe(5); // the guesser: banned, whatever the password
    expect(await connackFrom(port, '127.0.0.3', 'alice', 'right')).toBe(0); // alice from her address: no lockout
    expect(await connackFrom(port, '127.0.0.4', 'alice', 'right')).toBe(0); // from a new address: after a turn and a delay
    expect(await connackFrom(port, '127.0.0.2', 'carol', 'right')).toBe(0); // the address is not banned for others
    const bans = agent.lines.filter((l) => l.includes('login banned'));
    expect(bans.length).toBe(1); // the pair, once
    expect(bans[0]).toContain('user alice at 127.0.0.2');
  });

  it('caps connections that have not logged in per address; 300 half-CONNECTs add no more than a few MB', async () => {
    const before = rssKb(agent.proc.pid!);
    const sockets = await Promise.all(Array.from({ length: 300 }, (_, i) => halfConnect(port, `127.0.${10 + (i >> 7)}.${(i % 127) + 1}`)));
    const sameAddress = await Promise.all(Array.from({ length: 10 }, () => halfConnect(port, '127.0.9.9')));
    await new Promise((r) => setTimeout(r, 500));
    const openSame = sameAddress.filter((s) => !s.destroyed && s.readyState === 'open').length;
    const open = sockets.filter((s) => !s.destroyed && s.readyState === 'open').length;
    const grew = rssKb(agent.proc.pid!) - before;
    [...sockets, ...sameAddress].forEach((s) => s.destroy());
    expect(openSame).toBeLessThanOrEqual(8); // maxPendingPerAddress
    expect(open + openSame).toBeLessThanOrEqual(64); // maxPendingLogins
    expect(open).toBeGreaterThan(0); // positive control: connections were made and held
    expect(grew).toBeLessThan(8 * 1024); // measured 1-5 MB here (RSS moves with the GC)
  });

  it('8 addresses holding every waiting slot (8 half-CONNECTs each) do not shut out a login from a ninth', async () => {
    const held = await Promise.all(Array.from({ length: 64 }, (_, i) => halfConnect(port, `127.0.30.${(i >> 3) + 1}`)));
    await new Promise((r) => setTimeout(r, 300));
    expect(held.filter((s) => !s.destroyed && s.readyState === 'open').length).toBe(64); // every slot taken
    expect(await connackFrom(port, '127.0.31.1', 'carol', 'right')).toBe(0);
    expect(await connackFrom(port, '127.0.31.2', 'carol', 'right')).toBe(0); // (alice is banned by the test above)
    await new Promise((r) => setTimeout(r, 100));
    expect(held.filter((s) => !s.destroyed && s.readyState === 'open').length).toBe(63); // one gave up its slot (the second login found the first's free)
    held.forEach((s) => s.destroy());
  });

  it('64 addresses holding every waiting slot (one half-CONNECT each) do not shut out an address a login succeeded from', async () => {
    expect(await connackFrom(port, '127.0.0.5', 'carol', 'right')).toBe(0); // 127.0.0.5 is known from now on
    const held = await Promise.all(Array.from({ length: 64 }, (_, i) => halfConnect(port, `127.0.32.${i + 1}`)));
    await new Promise((r) => setTimeout(r, 300));
    expect(held.filter((s) => !s.destroyed && s.readyState === 'open').length).toBe(64); // every slot taken
    expect(await connackFrom(port, '127.0.33.1', 'carol', 'right')).toBe('closed'); // the control: a stranger gets no slot
    expect(await connackFrom(port, '127.0.0.5', 'carol', 'right')).toBe(0);
    held.forEach((s) => s.destroy());
  });

  it('closes a CONNECT larger than maxConnectBytes from its header, and a half CONNECT after connectTimeoutMs', async () => {
    const big = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => s.write(Buffer.from([0x10, 0xff, 0xff, 0x03]))); // says 65,535+ bytes follow
      s.on('close', () => resolve(true));
      s.on('error', () => {});
    });
    expect(big).toBe(true);
    const started = Date.now();
    const half = await halfConnect(port, '127.0.8.8');
    await new Promise<void>((resolve) => (half.destroyed ? resolve() : half.once('close', () => resolve())));
    expect(Date.now() - started).toBeGreaterThanOrEqual(4000); // connectTimeoutMs, 5 s by default
  }, 20_000);
});
