import type { Client } from 'aedes';
import type { PubackQueue } from './pubacks.js';
import { clientAcl, type AclRule, type ClientAcl, type Identity } from './acl.js';

/** What the broker holds for an authenticated client. */
export interface Session {
  identity: Identity;
  acl: ClientAcl;
  /** Logged in by a client certificate whose CN names no user (allowed by config): no user to revoke. */
  certificateOnly: boolean;
  /** The user's password fingerprint at a password login: a new password ends the connection. */
  credential?: string;
  /** Its QoS 1 PUBACKs waiting for their messages to be safe. */
  pubacks?: PubackQueue;
  /** Messages its socket is not read for until they are safe (holdSender). */
  holds: number;
}

const sessions = new WeakMap<Client, Session>();

export function openSession(
  client: Client,
  identity: Identity,
  rules: AclRule[],
  how: { certificateOnly?: boolean; credential?: string } = {},
): void {
  sessions.set(client, {
    identity,
    acl: clientAcl(rules, identity),
    certificateOnly: how.certificateOnly ?? false,
    credential: how.credential,
    holds: 0,
  });
}

/** The user's roles changed while connected: its rules follow (the session's other state stays). */
export function changeRoles(session: Session, roles: string[], rules: AclRule[]): void {
  session.identity = { ...session.identity, roles };
  session.acl = clientAcl(rules, session.identity);
}

export function sessionOf(client: Client): Session | undefined {
  return sessions.get(client);
}
