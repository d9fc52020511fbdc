// Per-client publish/subscribe rules with +/# patterns and %u (user name) / %c (client id) substitution.
import { filterCovers, topicMatches } from '../mqtt-topic/topic.js';

export interface AclRule {
  user?: string;
  role?: string;
  anonymous?: true;
  all?: true;
  publish: string[];
  subscribe: string[];
}

export interface Identity {
  clientId: string;
  username?: string;
  roles: string[];
}

export interface ClientAcl {
  canPublish(topic: string): boolean;
  canSubscribe(filter: string): boolean;
}

const MEMO_LIMIT = 1024;
const ALLOW_ALL: ClientAcl = { canPublish: () => true, canSubscribe: () => true };

/** With no rules every client that got in may do anything, as Mosquitto does without an acl_file. */
export function clientAcl(rules: AclRule[], who: Identity): ClientAcl {
  if (rules.length === 0) return ALLOW_ALL;
  const mine = rules.filter((r) => appliesTo(r, who));
  const publish = mine.flatMap((r) => r.publish).flatMap((p) => substitute(p, who));
  const subscribe = mine.flatMap((r) => r.subscribe).flatMap((p) => substitute(p, who));
  return {
    canPublish: memoized((topic) => publish.some((p) => topicMatches(p, topic))),
    // Asked for every delivery too (authorizeForward), with the topic as the filter.
    canSubscribe: memoized((filter) => subscribe.some((p) => filterCovers(p, filter))),
  };
}

/** A check remembered for the last MEMO_LIMIT topics or filters it was asked about. */
function memoized(check: (s: string) => boolean): (s: string) => boolean {
  const memo = new Map<string, boolean>();
  return (s) => {
    let ok = memo.get(s);
    if (ok === undefined) {
      ok = check(s);
      if (memo.size >= MEMO_LIMIT) memo.clear();
      memo.set(s, ok);
    }
    return ok;
  };
}

function appliesTo(rule: AclRule, who: Identity): boolean {
  if (rule.all) return true;
  if (rule.anonymous) return who.username === undefined;
  if (rule.user !== undefined) return rule.user === who.username;
  if (rule.role !== undefined) return who.username !== undefined && who.roles.includes(rule.role);
  return false;
}

/** A pattern naming %u or %c is dropped when the value is missing or would act as a wildcard or level. */
function substitute(pattern: string, who: Identity): string[] {
  const values: Record<string, string | undefined> = { '%u': who.username, '%c': who.clientId };
  let unusable = false;
  const out = pattern.replace(/%[uc]/g, (token) => {
    const v = values[token];
    if (v === undefined || v === '' || /[+#/]/.test(v)) unusable = true;
    return v ?? '';
  });
  return unusable ? [] : [out];
}
