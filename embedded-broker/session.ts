import type { Client } from 'aedes';
import { clientAcl, type AclRule, type ClientAcl, type Identity } from './acl.js';

/** What the broker holds for an authenticated client. */
export interface Session {
  identity: Identity;
  acl: ClientAcl;
  /** Inbound QoS 1/2 publishes not yet acknowledged. */
  inflight: number;
}

const sessions = new WeakMap<Client, Session>();

export function openSession(client: Client, identity: Identity, rules: AclRule[]): void {
  sessions.set(client, { identity, acl: clientAcl(rules, identity), inflight: 0 });
}

export function sessionOf(client: Client): Session | undefined {
  return sessions.get(client);
}
