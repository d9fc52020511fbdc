// A config reload: the new config is checked whole first (a bad one changes nothing); then what can
// change while running is applied, and every other changed key is named as needing a restart.

/** Keys that take effect without a restart. */
// (log.level is not: pino's child loggers keep the level they were made with.)
export const LIVE_KEYS = ['ingest.schemas'] as const;

export interface ReloadResult {
  applied: string[];
  restartRequired: string[];
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Dotted keys whose values differ (arrays compared whole). */
export function changedKeys(a: unknown, b: unknown, at = ''): string[] {
  if (isObject(a) && isObject(b)) {
    return [...new Set([...Object.keys(a), ...Object.keys(b)])].flatMap((k) => changedKeys(a[k], b[k], at ? `${at}.${k}` : k));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [at];
}

/** Split changed keys into those applied live and those that wait for a restart. */
export function planReload(before: unknown, after: unknown): ReloadResult {
  const changed = changedKeys(before, after);
  const live = (k: string) => LIVE_KEYS.some((l) => k === l || k.startsWith(`${l}.`));
  return { applied: changed.filter(live), restartRequired: changed.filter((k) => !live(k)) };
}
