import type { Client } from 'aedes';
import type { PubackQueue } from './pubacks.js';
import { clientAcl, type AclRule, type ClientAcl, type Identity } from './acl.js';

/** What the broker holds for an authenticated client. */
export interface Session {
  identity: Identity;
  acl: ClientAcl;
  /** Its QoS 1 PUBACKs waiting for their messages to be safe. */
  pubacks?: PubackQueue;
  /** Messages its socket is not read for until they are safe (holdSender). */
  holds: number;
}

const sessions = new WeakMap<Client, Session>();

export function openSession(client: Client, identity: Identity, rules: AclRule[]): void {
  sessions.set(client, { identity, acl: clientAcl(rules, identity), holds: 0 });
}

export function sessionOf(client: Client): Session | undefined {
  return sessions.get(client);
}
