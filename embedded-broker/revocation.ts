// A user removed from the users file, given a new password or other roles while connected: within
// a second its open connections follow (closed, or their rules changed), as on their next login.
import type { Aedes, Client } from 'aedes';
import type { AclRule } from './acl.js';
import type { Users } from './auth.js';
import type { Logger } from './logger.js';
import { changeRoles, sessionOf } from './session.js';

const sameRoles = (a: string[], b: string[]) => a.length === b.length && a.every((r, i) => r === b[i]);

export function watchUsers(aedes: Aedes, users: Users, rules: AclRule[], logger: Logger, everyMs = 1000): () => void {
  let checking = false;
  async function check(): Promise<void> {
    const rolesOf = new Map<string, Promise<string[] | null>>(); // one look-up per user a round
    for (const client of Object.values((aedes as Aedes & { clients: Record<string, Client> }).clients)) {
      const session = sessionOf(client);
      const username = session?.identity.username;
      if (!session || username === undefined || session.certificateOnly) continue;
      if (!rolesOf.has(username)) rolesOf.set(username, users.roles(username));
      const roles = await rolesOf.get(username)!;
      if (roles === null) {
        logger.warn({ clientId: client.id, username }, 'user removed; its connection is closed');
        client.close();
      } else if (session.credential !== undefined && users.fingerprint?.(username) !== session.credential) {
        logger.warn(
          { clientId: client.id, username },
          "user's password changed; its connection is closed (it logs in again with the new one)",
        );
        client.close();
      } else if (!sameRoles(roles, session.identity.roles)) {
        changeRoles(session, roles, rules);
        logger.info({ clientId: client.id, username, roles }, "user's roles changed; its rules follow");
      }
    }
  }
  const timer = setInterval(() => {
    if (checking) return;
    checking = true;
    check()
      .catch((err: Error) => logger.error({ err: err.message }, 'checking connected users failed'))
      .finally(() => (checking = false));
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
