// The Host check against DNS rebinding: the machine's names and addresses, configured extras,
// wildcards, and interfaces that change.
import type { NetworkInterfaceInfo } from 'node:os';
import { describe, expect, it } from 'vitest';
import { hostCheck, hostName } from '../../agent/serve/web/allowed-hosts.js';

const iface = (address: string) => ({ address }) as NetworkInterfaceInfo;

describe('allowed hosts', () => {
  it('reads the name out of a Host header', () => {
    expect(['pi:8080', 'PI', 'pi.', '[fe80::1]:8080', '[::1]', '192.168.1.5:80'].map(hostName)).toEqual([
      'pi',
      'pi',
      'pi',
      'fe80::1',
      '::1',
      '192.168.1.5',
    ]);
  });

  it("answers the machine's names and addresses, loopback and configured names; refuses others", () => {
    const check = hostCheck(['grafana.lan', '*.home.example'], {
      name: () => 'Sensor-Pi',
      interfaces: () => ({ wlan0: [iface('192.168.1.40'), iface('fe80::1%wlan0')] }),
    });
    const allowed = [
      'sensor-pi:8080',
      'sensor-pi.local',
      'localhost:8080',
      'app.localhost',
      '127.0.0.1:8080',
      '127.3.2.1',
      '[::1]:8080',
      '192.168.1.40:8080',
      '[fe80::1]:8080',
      'grafana.lan',
      'pi.home.example',
      undefined,
    ];
    expect(allowed.filter((h) => !check.allows(h))).toEqual([]);
    const refused = ['evil.example:8080', 'sensor-pi.evil.example', '192.168.1.41', 'home.example.evil', 'localhost.evil.example', ''];
    expect(refused.filter((h) => check.allows(h))).toEqual([]);
  });

  it('looks at the interfaces again when an address is new (a DHCP lease)', () => {
    let addresses = [iface('10.0.0.5')];
    const check = hostCheck([], { name: () => 'pi', interfaces: () => ({ eth0: addresses }) });
    expect(check.allows('10.0.0.5')).toBe(true);
    addresses = [iface('10.0.0.9')];
    expect(check.allows('10.0.0.9')).toBe(true);
    expect(check.allows('10.0.0.5')).toBe(false); // the old lease is gone
  });

  it('* turns the check off', () => {
    expect(hostCheck(['*']).allows('evil.example')).toBe(true);
  });
});
