// Stored readings folded into buckets per topic and payload field: an aggregate of a width the
// rollups do not keep. Folded beside the store (in its thread, for SQLite), so that the readings
// never cross to the thread that acknowledges readings; only the buckets do.
import type { LogRecord } from '../../log/format.js';
import { bucketStart } from '../rollups/extract.js';
import { add, merge, single } from '../rollups/stats.js';
import type { Folded, FoldQuery, FoldResult, SeqRange } from './types.js';
import { fieldOf } from './where.js';

export function foldReading(into: Folded, r: LogRecord, width: number, fields?: string[]): void {
  const start = bucketStart(r.receivedAt, width);
  for (const field of fields ?? (r.payload && typeof r.payload === 'object' ? Object.keys(r.payload) : [])) {
    const value = fieldOf(r.payload, field);
    if (typeof value !== 'number' || !Number.isFinite(value)) continue;
    const key = `${r.topic}\u0000${field}`;
    let s = into.get(key);
    if (!s) into.set(key, (s = { topic: r.topic, field, points: new Map() }));
    const p = s.points.get(start);
    if (p) add(p, value, r.seq);
    else s.points.set(start, single(value, r.seq));
  }
}

/** Add a part folded apart (another slice of the range) into `into`. */
export function mergeFolded(into: Folded, part: Folded): void {
  for (const [key, s] of part) {
    const mine = into.get(key);
    if (!mine) {
      into.set(key, s);
      continue;
    }
    for (const [start, stats] of s.points) {
      const p = mine.points.get(start);
      mine.points.set(start, p ? merge(p, stats) : stats);
    }
  }
}

/** A fold from pages of readings (a store whose readings are in this thread already). */
export async function foldPages(
  query: (q: {
    topic: string;
    from?: number;
    to?: number;
    after?: { at: number; seq: number };
    exceptSeqs?: SeqRange;
    limit: number;
  }) => Promise<LogRecord[]>,
  q: FoldQuery,
): Promise<FoldResult> {
  const series: Folded = new Map();
  let after: { at: number; seq: number } | undefined;
  for (let folded = 0; ;) {
    // One more than the budget tells a range that holds more.
    const limit = Math.min(1000, q.maxScan + 1 - folded);
    const page = await query({ topic: q.topic, from: q.from, to: q.to, after, exceptSeqs: q.exceptSeqs, limit });
    for (const r of page.slice(0, q.maxScan - folded)) foldReading(series, r, q.width, q.fields);
    folded += page.length;
    if (folded > q.maxScan) return { series, folded: q.maxScan, more: true };
    if (page.length < limit) return { series, folded, more: false };
    after = { at: page.at(-1)!.receivedAt, seq: page.at(-1)!.seq };
  }
}
