// What a user or key may do in the web API: viewer reads, operator also changes data flow
// (ingest, schemas, replays, retries, reloads), admin also deletes data and manages keys.
// A user holding none of these roles is MQTT-only: the web API refuses him.
export const WEB_ROLES = ['viewer', 'operator', 'admin'] as const;
export type WebRole = (typeof WEB_ROLES)[number];

const rank = (role: WebRole) => WEB_ROLES.indexOf(role);

/** The highest web role among a user's roles, or undefined (MQTT-only). */
export function webRoleOf(roles: string[]): WebRole | undefined {
  let best: WebRole | undefined;
  for (const r of roles)
    if ((WEB_ROLES as readonly string[]).includes(r) && (!best || rank(r as WebRole) > rank(best))) best = r as WebRole;
  return best;
}

export const mayAct = (have: WebRole, need: WebRole) => rank(have) >= rank(need);
