// The chaos suite's common parts: how hard it runs (CHAOS=full for `npm run chaos`, a short version
// in `npm test`), a seed each scenario prints and can be replayed with, and the record each scenario
// leaves in test-results/chaos/ for docs/reliability.md.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../scripts/project-root.js';
import type { TestDatabase } from '../helpers/servers.js';
import { seededRandom } from '../helpers/seed.js';
import { openStoreFile } from '../helpers/store-file.js';

export const FULL = process.env.CHAOS === 'full';

/** A figure the short and the full run take different values of. */
export const scale = <T>(short: T, full: T): T => (FULL ? full : short);

export interface Chaos {
  seed: number;
  /** In [0, 1). */
  next(): number;
  /** An integer in [min, max]. */
  int(min: number, max: number): number;
  pick<T>(items: readonly T[]): T;
  /** Said in every failure message: how to run this again. */
  replay: string;
}

/** The scenario's random source: CHAOS_SEED if given, else the clock; printed so a failure can be replayed. */
export function chaos(scenario: string): Chaos {
  const random = seededRandom(Number(process.env.CHAOS_SEED ?? Date.now() % 2 ** 31));
  const replay = `(replay: CHAOS_SEED=${random.seed}${FULL ? ' npm run chaos' : ` npx vitest run test/chaos/${scenario}.test.ts`})`;
  console.log(`chaos ${scenario}: seed ${random.seed} ${replay}`);
  return {
    seed: random.seed,
    next: () => random.next(),
    int: (min, max) => min + Math.floor(random.next() * (max - min + 1)),
    pick: (items) => items[Math.floor(random.next() * items.length)],
    replay,
  };
}

/** What a scenario did and found, for the report. */
export interface Outcome {
  scenario: string;
  title: string;
  seed: number;
  full: boolean;
  seconds: number;
  /** What was done (kills, outages, packets...). */
  did: Record<string, number | string>;
  /** What was found (readings acknowledged, missing, duplicated...). */
  found: Record<string, number | string>;
  /** What the figures mean where a table cannot say it. */
  notes?: string;
}

/** Keep the outcome in test-results/chaos/<scenario>.json (written only once the scenario passed). */
export function record(outcome: Outcome): void {
  const dir = join(projectRoot(), 'test-results/chaos');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${outcome.scenario}.json`), `${JSON.stringify({ ...outcome, at: new Date().toISOString() }, null, 2)}\n`);
}

/** Least-squares slope of y over t (seconds), per 10 minutes. */
export function slopePer10Min(samples: { t: number; y: number }[]): number {
  const n = samples.length;
  const mt = samples.reduce((a, s) => a + s.t, 0) / n;
  const my = samples.reduce((a, s) => a + s.y, 0) / n;
  const cov = samples.reduce((a, s) => a + (s.t - mt) * (s.y - my), 0);
  const vt = samples.reduce((a, s) => a + (s.t - mt) ** 2, 0);
  return vt === 0 ? 0 : (cov / vt) * 600;
}

/** Each reading's `key` as the agent's SQLite store holds it (read from the file, the agent stopped). */
export function storedKeys(storeFile: string): { seq: number; key: string }[] {
  const store = openStoreFile(storeFile);
  try {
    return store.prepare("SELECT seq, json_extract(payload, '$.key') AS key FROM readings").all() as { seq: number; key: string }[];
  } finally {
    store.close();
  }
}

/** Each row's `key` in a PostgreSQL sink's table, duplicates kept. */
export async function pgKeys(db: TestDatabase, table = 'telemetry'): Promise<string[]> {
  return (await db.query<{ key: string }>(`SELECT payload->>'key' AS key FROM ${table}`)).map((row) => row.key);
}

/** Each point's `key` in an InfluxDB sink's database (measurement `mqtt`), duplicates kept. */
export async function influxKeys(influx: { query(q: string): Promise<unknown> }, database: string): Promise<string[]> {
  const body = (await influx.query(`SELECT "key" FROM "${database}".."mqtt"`)) as {
    results: { series?: { values: [string, string][] }[] }[];
  };
  return (body.results[0].series?.[0].values ?? []).map(([, key]) => key);
}

/**
 * How two sets of keys differ, small enough to print: a failed toEqual on sets of many thousands
 * makes the test runner compute a diff for hours.
 */
export function difference(have: Iterable<string>, want: Iterable<string>): { missing: number; extra: number; examples: string[] } {
  const [a, b] = [new Set(have), new Set(want)];
  const missing = [...b].filter((k) => !a.has(k));
  const extra = [...a].filter((k) => !b.has(k));
  return { missing: missing.length, extra: extra.length, examples: [...missing.slice(0, 3), ...extra.slice(0, 3)] };
}

export const SAME = { missing: 0, extra: 0, examples: [] };
