// What the broker knows of a connection before MQTT says anything: listener, peer address, TLS identity.
import type { Duplex } from 'node:stream';

export interface ConnectionInfo {
  listener: string;
  remoteAddress: string;
  /** CN of a client certificate that the TLS layer verified. */
  certIdentity?: string;
}

const infos = new WeakMap<Duplex, ConnectionInfo>();

export function setConnectionInfo(conn: Duplex, info: ConnectionInfo): void {
  infos.set(conn, info);
}

export function connectionInfo(conn: Duplex): ConnectionInfo {
  return infos.get(conn) ?? { listener: 'internal', remoteAddress: '' };
}

export function isLoopback(address: string): boolean {
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  return a === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a);
}
