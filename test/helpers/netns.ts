// A test host in its own network namespace, joined to this one by a veth pair (needs root and iproute2).
import { execFileSync } from 'node:child_process';

export interface TestHost {
  /** Address of this (the agent's) side of the link. */
  hostAddress: string;
  /** Address of the test host inside the namespace. */
  peerAddress: string;
  /** Command prefix that runs a program inside the namespace. */
  exec: string[];
  destroy(): void;
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });

export function netnsAvailable(): boolean {
  try {
    const probe = `eaprobe${process.pid % 100000}`;
    ip('netns', 'add', probe);
    ip('netns', 'del', probe);
    return true;
  } catch {
    return false;
  }
}

/** 198.18.0.0/15 is reserved for network tests (RFC 2544); the link exists only between us and the namespace. */
export function createTestHost(): TestHost {
  // One /30 of the /15 for each process id (workers of a parallel run each have their own).
  const base = (198 << 24) + (18 << 16) + (process.pid % 32768) * 4;
  const dotted = (a: number) => [a >>> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255].join('.');
  const ns = `ea-test-${process.pid}`;
  const hostIf = `eah${process.pid % 100000}`;
  const nsIf = `ean${process.pid % 100000}`;
  const hostAddress = dotted(base + 1);
  const peerAddress = dotted(base + 2);
  ip('netns', 'add', ns);
  try {
    ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf);
    ip('link', 'set', nsIf, 'netns', ns);
    ip('addr', 'add', `${hostAddress}/30`, 'dev', hostIf);
    ip('link', 'set', hostIf, 'up');
    ip('netns', 'exec', ns, 'ip', 'addr', 'add', `${peerAddress}/30`, 'dev', nsIf);
    ip('netns', 'exec', ns, 'ip', 'link', 'set', nsIf, 'up');
    ip('netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up');
  } catch (err) {
    ip('netns', 'del', ns);
    throw err;
  }
  return {
    hostAddress,
    peerAddress,
    exec: ['ip', 'netns', 'exec', ns],
    destroy() {
      try {
        ip('link', 'del', hostIf);
      } catch {
        /* gone with the namespace */
      }
      ip('netns', 'del', ns);
    },
  };
}
