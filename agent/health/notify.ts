// The systemd notify protocol (Type=notify): READY=1 once the agent serves, STATUS= lines with a
// one-line summary, WATCHDOG=1 every half WATCHDOG_USEC from the event loop (a hung loop sends
// nothing, and systemd restarts the agent), STOPPING=1 on shutdown. Node cannot open the AF_UNIX
// datagram socket NOTIFY_SOCKET names (node:dgram is UDP only) and addons are out, so each message
// goes through systemd's own `systemd-notify`. Its messages come from its process, not the agent's:
// the unit needs NotifyAccess=all (only processes in the service's own cgroup may then send).
import { execFile } from 'node:child_process';

export interface NotifyLogger {
  warn(o: object, m: string): void;
}

export interface Notifier {
  /** Each resolves once systemd-notify has run (or failed: a missing notifier must not stop the agent). */
  ready(status: string): Promise<void>;
  status(line: string): Promise<void>;
  stopping(): Promise<void>;
  /** Ends the watchdog pings (and the status updates' timer, if any). */
  close(): void;
  /** Half of WATCHDOG_USEC, in ms; undefined without a watchdog. */
  readonly pingEveryMs: number | undefined;
}

/** A notifier when systemd asked for notifications (NOTIFY_SOCKET set), else undefined. */
export function systemdNotifier(
  logger: NotifyLogger,
  env: NodeJS.ProcessEnv = process.env,
  command = 'systemd-notify',
): Notifier | undefined {
  if (!env.NOTIFY_SOCKET) return undefined;
  let queue = Promise.resolve();
  let failedOnce = false;
  let pinging = false;
  const send = (assignments: string[]) => {
    queue = queue.then(
      () =>
        new Promise<void>((resolve) => {
          execFile(command, [`--pid=${process.pid}`, ...assignments], { env, timeout: 10_000 }, (err) => {
            if (err && !failedOnce) {
              failedOnce = true;
              logger.warn({ err: err.message, command }, 'could not notify systemd (is systemd-notify installed?)');
            }
            resolve();
          });
        }),
    );
    return queue;
  };

  const usec = Number(env.WATCHDOG_USEC);
  const forUs = env.WATCHDOG_PID === undefined || Number(env.WATCHDOG_PID) === process.pid;
  const pingEveryMs = Number.isFinite(usec) && usec > 0 && forUs ? Math.max(1, Math.floor(usec / 2000)) : undefined;
  // A ping still on its way when the next is due is not doubled: the loop is alive either way.
  const ping = () => {
    if (pinging) return;
    pinging = true;
    void send(['WATCHDOG=1']).finally(() => (pinging = false));
  };
  const timer = pingEveryMs === undefined ? undefined : setInterval(ping, pingEveryMs);
  timer?.unref();
  const oneLine = (s: string) => s.replace(/[\r\n]+/g, ' ').slice(0, 200);

  return {
    pingEveryMs,
    ready: (status) => send(['READY=1', `STATUS=${oneLine(status)}`]),
    status: (line) => send([`STATUS=${oneLine(line)}`]),
    stopping: () => send(['STOPPING=1', 'STATUS=stopping']),
    close: () => clearInterval(timer),
  };
}
