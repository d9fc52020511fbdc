// DNS rebinding: a page on evil.example whose name is made to point at the Pi (or at 127.0.0.1 in a
// browser on the Pi) reaches the agent as same-origin, with Host: evil.example. Only the agent's own
// names and addresses are answered, as Vite, webpack-dev-server and Home Assistant do.
import { hostname, networkInterfaces } from 'node:os';
import { isIP } from 'node:net';

export interface HostCheck {
  /** Whether a Host header names this agent (no header: not a browser, allowed). */
  allows(hostHeader: string | undefined): boolean;
}

export interface Machine {
  name(): string;
  interfaces(): ReturnType<typeof networkInterfaces>;
}

/** The name in a Host header: no port, no brackets, lower case, no trailing dot. */
export function hostName(header: string): string {
  const h = header.trim().toLowerCase();
  const name = h.startsWith('[') ? h.slice(1, h.indexOf(']') < 0 ? undefined : h.indexOf(']')) : h.replace(/:\d*$/, '');
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

/**
 * `extra` names besides the machine's own (host name, host name.local, localhost, every interface
 * address, any loopback address); `*.example.com` covers its subdomains; `*` turns the check off.
 */
export function hostCheck(extra: string[], machine: Machine = { name: hostname, interfaces: networkInterfaces }): HostCheck {
  if (extra.includes('*')) return { allows: () => true };
  const wildcards = extra.filter((e) => e.startsWith('*.')).map((e) => e.slice(1).toLowerCase());
  let names = new Set<string>();
  const refresh = () => {
    const own = machine.name().toLowerCase();
    const addresses = Object.values(machine.interfaces()).flatMap((list) =>
      (list ?? []).map((i) => i.address.toLowerCase().replace(/%.*$/, '')),
    );
    names = new Set([own, `${own}.local`, 'localhost', ...addresses, ...extra.map((e) => hostName(e))]);
  };
  const known = (name: string) =>
    names.has(name) || name.endsWith('.localhost') || isLoopback(name) || wildcards.some((w) => name.endsWith(w));
  return {
    allows(header) {
      if (header === undefined) return true;
      const name = hostName(header);
      if (known(name)) return true;
      refresh(); // an address or name that changed since (a DHCP lease, Wi-Fi up); getifaddrs is cheap
      return known(name);
    },
  };
}

function isLoopback(name: string): boolean {
  return (isIP(name) === 4 && name.startsWith('127.')) || name === '::1' || name.startsWith('::ffff:127.');
}
