// CONNECT authentication: verified client certificate, user name + password, or anonymous by policy.
import type { Aedes, AuthenticateError, Client } from 'aedes';
import type { AclRule } from './acl.js';
import { connectionInfo, isLoopback } from './connection-info.js';
import { openSession } from './session.js';
import type { BrokerStats } from './stats.js';
import type { Logger } from './logger.js';

export type AnonymousPolicy = 'loopback' | boolean;

export interface Users {
  /** Roles of the user if the password is right, else null. */
  verify(username: string, password: Buffer): Promise<string[] | null>;
  /** Roles of a user known by other means (a client certificate); [] if unknown. */
  roles(username: string): Promise<string[]>;
}

export interface AuthOptions {
  allowAnonymous: AnonymousPolicy;
  useIdentityAsUsername: boolean;
  maxClients: number;
  acl: AclRule[];
  users: Users;
}

/** CONNACK return codes [MQTT-3.2.2.3]. */
const Code = { ServerUnavailable: 3, BadCredentials: 4, NotAuthorized: 5 } as const;

function refuse(code: number, message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode: code }) as unknown as AuthenticateError;
}

export function makeAuthenticate(broker: () => Aedes, opts: AuthOptions, stats: BrokerStats, log: Logger) {
  async function identify(client: Client, username: string | undefined, password: Buffer | undefined) {
    const info = connectionInfo(client.conn);
    if (broker().connectedClients >= opts.maxClients) {
      stats.connectionsRefused++;
      throw refuse(Code.ServerUnavailable, 'too many clients');
    }
    if (opts.useIdentityAsUsername && info.certIdentity) {
      return { username: info.certIdentity, roles: await opts.users.roles(info.certIdentity) };
    }
    if (username !== undefined) {
      const roles = password ? await opts.users.verify(username, password) : null;
      if (!roles) throw refuse(Code.BadCredentials, 'bad user name or password');
      return { username, roles };
    }
    const anonymousOk = opts.allowAnonymous === true || (opts.allowAnonymous === 'loopback' && isLoopback(info.remoteAddress));
    if (!anonymousOk) throw refuse(Code.NotAuthorized, 'anonymous access is not allowed from this address');
    return { username: undefined, roles: [] };
  }

  return function authenticate(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
    done: (error: AuthenticateError | null, success: boolean | null) => void,
  ): void {
    identify(client, username, password).then(
      (who) => {
        openSession(client, { clientId: client.id, ...who }, opts.acl);
        done(null, true);
      },
      (err: AuthenticateError) => {
        if ((err.returnCode as number) !== Code.ServerUnavailable) stats.authFailures++;
        const info = connectionInfo(client.conn);
        log.warn({ clientId: client.id, username, remote: info.remoteAddress, listener: info.listener, reason: err.message }, 'connection refused');
        done(err.returnCode ? err : refuse(Code.ServerUnavailable, 'authentication failed'), false);
      },
    );
  };
}
