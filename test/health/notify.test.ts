// The systemd notify protocol against a datagram socket the test listens on: READY=1 with a status
// line once the agent serves, WATCHDOG=1 at half WATCHDOG_USEC (none while the event loop is
// blocked, so systemd would restart a hung agent), STOPPING=1 on SIGTERM.
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { systemdNotifier } from '../../agent/health/notify.js';
import { cleanup, spawnAgent, tempDir, writeConfig } from '../helpers/agent.js';
import { listenNotify } from '../helpers/notify.js';
import { until } from '../helpers/servers.js';

const quiet = { warn() {} };
const dirs: string[] = [];
afterAll(() => dirs.forEach(cleanup));

function socketPath(): string {
  const dir = tempDir();
  dirs.push(dir);
  return join(dir, 'notify.sock');
}

describe('systemd notify', () => {
  it('pings the watchdog at half WATCHDOG_USEC from the event loop, and not while it is blocked', async () => {
    const path = socketPath();
    const socket = await listenNotify(path);
    const notifier = systemdNotifier(quiet, { ...process.env, NOTIFY_SOCKET: path, WATCHDOG_USEC: '400000' })!;
    try {
      expect(notifier.pingEveryMs).toBe(200);
      const pings = () => socket.messages.filter((m) => m.fields.WATCHDOG === '1');
      await until(() => pings().length >= 4, 10_000, 'watchdog pings');
      const beforeBlock = pings().length;
      const blockedFrom = performance.now();
      while (performance.now() - blockedFrom < 2000); // a hung event loop
      await until(() => pings().length >= beforeBlock + 4, 10_000, 'pings again after the block');
      const at = pings().map((p) => p.at);
      const gaps = at.slice(1).map((t, i) => t - at[i]);
      // The control: while the loop ran, pings came about every 200 ms...
      expect(gaps.slice(0, beforeBlock - 1).every((g) => g < 1000)).toBe(true);
      // ...and while it was blocked none came for most of the 2 s.
      expect(Math.max(...gaps)).toBeGreaterThan(1500);
      expect(pings()[0].fields.MAINPID).toBe(String(process.pid));
    } finally {
      notifier.close();
      socket.close();
    }
  });

  it('sends nothing without NOTIFY_SOCKET, and no pings without WATCHDOG_USEC or for another WATCHDOG_PID', () => {
    expect(systemdNotifier(quiet, {})).toBeUndefined();
    const path = socketPath();
    const noWatchdog = systemdNotifier(quiet, { NOTIFY_SOCKET: path })!;
    const other = systemdNotifier(quiet, { NOTIFY_SOCKET: path, WATCHDOG_USEC: '1000000', WATCHDOG_PID: '1' })!;
    const ours = systemdNotifier(quiet, { NOTIFY_SOCKET: path, WATCHDOG_USEC: '1000000', WATCHDOG_PID: String(process.pid) })!;
    expect([noWatchdog.pingEveryMs, other.pingEveryMs, ours.pingEveryMs]).toEqual([undefined, undefined, 500]);
    for (const n of [noWatchdog, other, ours]) n.close();
  });

  it('a running agent says READY=1 with its status once it serves, pings, and says STOPPING=1 on SIGTERM', async () => {
    const path = socketPath();
    const socket = await listenNotify(path);
    const dir = tempDir();
    dirs.push(dir);
    const agent = await spawnAgent(['run', '--config', writeConfig(dir)], { NOTIFY_SOCKET: path, WATCHDOG_USEC: '1000000' });
    try {
      const ready = await until(() => socket.messages.find((m) => m.fields.READY === '1'), 20_000, 'READY=1');
      expect(ready.fields.STATUS).toMatch(/^ready; 0 readings taken; 0 clients/);
      expect(ready.fields.MAINPID).toBe(String(agent.proc.pid));
      await until(() => socket.messages.filter((m) => m.fields.WATCHDOG === '1' && m.at > ready.at).length >= 2, 20_000, 'watchdog pings');
      agent.proc.kill('SIGTERM');
      expect(await agent.exited).toBe(0);
      expect(socket.messages.find((m) => m.fields.STOPPING === '1')).toBeDefined();
    } finally {
      agent.proc.kill('SIGKILL');
      socket.close();
    }
  });
});
