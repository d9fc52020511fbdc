// MQTT topic names and filters: one set of rules for every stage (the broker's ACL and persistence,
// ingest's schema matching, the stores' queries, the sinks' topic filters).

/** Does a topic filter (with + and #) match a topic name? Wildcards never match a leading `$` level [MQTT-4.7.2-1]. */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  // Level by level with indexes, not split('/'): it runs for every reading a live client or a query's
  // tail looks at, and the arrays split made were a good part of the garbage under load.
  let f = 0;
  let t = 0; // -1 once the topic has no more levels
  for (;;) {
    const fEnd = levelEnd(filter, f);
    const single = fEnd - f === 1;
    if (single && filter.charCodeAt(f) === HASH) return true;
    if (t < 0) return false;
    const tEnd = levelEnd(topic, t);
    if (!(single && filter.charCodeAt(f) === PLUS) && !sameLevel(filter, f, fEnd, topic, t, tEnd)) return false;
    if (fEnd === filter.length) return tEnd === topic.length;
    f = fEnd + 1;
    t = tEnd === topic.length ? -1 : tEnd + 1;
  }
}

const HASH = 35;
const PLUS = 43;

/** Where the level starting at `from` ends (a '/' or the end). */
function levelEnd(s: string, from: number): number {
  const at = s.indexOf('/', from);
  return at < 0 ? s.length : at;
}

function sameLevel(a: string, aFrom: number, aEnd: number, b: string, bFrom: number, bEnd: number): boolean {
  if (aEnd - aFrom !== bEnd - bFrom) return false;
  for (let i = 0; i < aEnd - aFrom; i++) if (a.charCodeAt(aFrom + i) !== b.charCodeAt(bFrom + i)) return false;
  return true;
}

/**
 * Does an allowed pattern cover every topic a requested subscription filter could match?
 * `+` in the request is covered only by `+` or `#`; `#` only by `#`.
 */
export function filterCovers(allowed: string, requested: string): boolean {
  if (requested.startsWith('$') && (allowed.startsWith('+') || allowed.startsWith('#'))) return false;
  const a = allowed.split('/');
  const r = requested.split('/');
  for (let i = 0; i < a.length; i++) {
    if (a[i] === '#') return true;
    if (i >= r.length) return false;
    if (r[i] === '#') return false;
    if (a[i] === '+') continue;
    if (a[i] !== r[i]) return false;
  }
  return a.length === r.length;
}

/** Whether a topic matches one of `topics` and none of `except` (filters with + and #). */
export const coveredBy =
  ({ topics, except = [] }: { topics: readonly string[]; except?: readonly string[] }) =>
  (topic: string): boolean =>
    topics.some((f) => topicMatches(f, topic)) && !except.some((f) => topicMatches(f, topic));

/** The first `limit` rows whose topic a filter matches (every row without a filter), in their order. */
export function firstMatching<T extends { topic: string }>(rows: Iterable<T>, filter: string | undefined, limit: number): T[] {
  const out: T[] = [];
  if (limit <= 0) return out;
  for (const r of rows) {
    if (filter !== undefined && !topicMatches(filter, r.topic)) continue;
    out.push(r);
    if (out.length >= limit) break;
  }
  return out;
}

/** Why a topic filter is not valid MQTT (`#` only as the last level, `+` only as a whole level), or undefined. */
export function filterProblem(filter: string): string | undefined {
  if (filter.length === 0) return 'empty';
  if (filter.includes('\u0000')) return 'holds a NUL character';
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const l = levels[i];
    if (l.includes('#') && (l !== '#' || i !== levels.length - 1)) return '# must be a whole level, and the last';
    if (l.includes('+') && l !== '+') return '+ must be a whole level';
  }
  return undefined;
}
