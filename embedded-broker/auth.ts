// CONNECT authentication: verified client certificate, user name + password, or anonymous by policy.
import type { Aedes, AuthenticateError, Client } from 'aedes';
import type { AclRule } from './acl.js';
import { connectionInfo, isLoopback } from './connection-info.js';
import { LoginAbandoned, type LoginGuard } from './login-guard.js';
import { openSession, sessionOf } from './session.js';
import type { BrokerStats } from './stats.js';
import type { Logger } from './logger.js';

export type AnonymousPolicy = 'loopback' | boolean;

export interface Users {
  /** Roles of the user if the password is right, else null. */
  verify(username: string, password: Buffer): Promise<string[] | null>;
  /** Roles of a user known by other means (a client certificate, an open connection); null if no such user. */
  roles(username: string): Promise<string[] | null>;
  /** Changes when the user's password does (connections logged in with the old one are closed). */
  fingerprint?(username: string): string | undefined;
}

/** Whose each persistent session is: a client id is not another user's to take. */
export interface SessionOwners {
  sessionOwner(clientId: string): string | undefined;
  setSessionOwner(clientId: string, owner: string | undefined): void;
  /** A session whose client stayed away past the expiry, or whose user is gone, is ended now, before its id is claimed. */
  endIfStale?(clientId: string): Promise<void>;
}

export interface AuthOptions {
  /** Throttles failed logins and bounds password hashing. */
  guard: LoginGuard;
  allowAnonymous: AnonymousPolicy;
  useIdentityAsUsername: boolean;
  /** A verified certificate whose CN names no user may still log in (with no roles). */
  certificateOnlyUsers?: boolean;
  maxClients: number;
  acl: AclRule[];
  users: Users;
  owners: SessionOwners;
}

/** The key a session's owner is recorded under: the user name, '' for anonymous clients, cert:<CN> for a certificate naming no user. */
const ownerKey = (username: string | undefined, certificateOnly = false) => (certificateOnly ? `cert:${username}` : (username ?? ''));

/** CONNACK return codes [MQTT-3.2.2.3]. */
const Code = { ServerUnavailable: 3, BadCredentials: 4, NotAuthorized: 5 } as const;

function refuse(code: number, message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode: code }) as unknown as AuthenticateError;
}

export function makeAuthenticate(broker: () => Aedes, opts: AuthOptions, stats: BrokerStats, logger: Logger) {
  async function identify(client: Client, username: string | undefined, password: Buffer | undefined) {
    const info = connectionInfo(client.conn);
    if (broker().connectedClients >= opts.maxClients) {
      stats.connectionsRefused++;
      throw refuse(Code.ServerUnavailable, 'too many clients');
    }
    if (opts.useIdentityAsUsername && info.certIdentity) {
      const roles = await opts.users.roles(info.certIdentity);
      if (roles === null && !opts.certificateOnlyUsers) throw refuse(Code.NotAuthorized, 'the certificate names no known user');
      return { username: info.certIdentity, roles: roles ?? [], certificateOnly: roles === null };
    }
    if (username !== undefined) {
      const verdict = await opts.guard.login(
        info.remoteAddress,
        username,
        () => (password ? opts.users.verify(username, password) : null),
        () => client.conn.destroyed,
      );
      if (verdict.ok) return { username, roles: verdict.value, certificateOnly: false, credential: opts.users.fingerprint?.(username) };
      // a ban costs the agent no password check
      throw verdict.banned ? refuse(Code.NotAuthorized, verdict.banned) : refuse(Code.BadCredentials, 'bad user name or password');
    }
    const anonymousOk = opts.allowAnonymous === true || (opts.allowAnonymous === 'loopback' && isLoopback(info.remoteAddress));
    if (!anonymousOk) throw refuse(Code.NotAuthorized, 'anonymous access is not allowed from this address');
    return { username: undefined, roles: [], certificateOnly: false };
  }

  /**
   * A client id in use by another user, or whose persistent session is another user's, is refused:
   * neither the session nor the connection is his to take. The same user may take over [MQTT-3.1.4-2].
   */
  function claim(client: Client, username: string | undefined, certificateOnly: boolean): void {
    const key = ownerKey(username, certificateOnly);
    const holder = (broker() as Aedes & { clients: Record<string, Client | undefined> }).clients[client.id];
    const holderSession = holder && holder !== client ? sessionOf(holder) : undefined;
    const stored = opts.owners.sessionOwner(client.id);
    if (
      (holderSession && ownerKey(holderSession.identity.username, holderSession.certificateOnly) !== key) ||
      (stored !== undefined && stored !== key)
    ) {
      throw refuse(Code.NotAuthorized, 'client id belongs to another user');
    }
    // A clean session discards the stored one: nobody owns the id until a persistent session claims it.
    opts.owners.setSessionOwner(client.id, client.clean ? undefined : key);
  }

  return function authenticate(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
    done: (error: AuthenticateError | null, success: boolean | null) => void,
  ): void {
    identify(client, username, password).then(
      async (who) => {
        await opts.owners.endIfStale?.(client.id);
        try {
          claim(client, who.username, who.certificateOnly);
        } catch (err) {
          return refused(err as AuthenticateError);
        }
        openSession(client, { clientId: client.id, username: who.username, roles: who.roles }, opts.acl, {
          certificateOnly: who.certificateOnly,
          credential: 'credential' in who ? who.credential : undefined,
        });
        opts.guard.loggedIn(client.conn);
        done(null, true);
      },
      (err: AuthenticateError) => refused(err),
    );
    function refused(err: AuthenticateError): void {
      if (err instanceof LoginAbandoned) return done(refuse(Code.ServerUnavailable, err.message), false); // nobody to answer
      if ((err.returnCode as number) !== Code.ServerUnavailable) stats.authFailures++;
      const info = connectionInfo(client.conn);
      // Under a flood of attempts the log says so once per ban (LoginGuard), not once per attempt.
      const level = opts.guard.banned(info.remoteAddress, username) ? 'debug' : 'warn';
      logger[level](
        { clientId: client.id, username, remote: info.remoteAddress, listener: info.listener, reason: err.message },
        'connection refused',
      );
      done(err.returnCode ? err : refuse(Code.ServerUnavailable, 'authentication failed'), false);
    }
  };
}
