// Queries see every reading committed before them without making the store write what it gathers.
// When readings are few the store writes in large, rare transactions (maxGatherMs); a query that had
// it write first turned them into a small one per query (a client asking every 2 s at 100 readings/s
// made the store write 12 times the bytes). A query reads the store up to the store's cursor and the
// rest, the log's tail, from the log (parsed once and kept while queries come), and merges the two.
import { coveredBy, topicMatches } from '../../../mqtt-topic/topic.js';
import type { ClockOffsets } from '../../ingest/clock-correction.js';
import { decodeRecord, type LogRecord } from '../../log/format.js';
import type { DurableLog } from '../../log/index.js';
import { inSlices } from '../../lib/slices.js';
import { foldReading, mergeFolded } from './fold.js';
import type { Folded, FoldQuery, FoldResult, LocalStore, Position, SeqRange, StoreQuery } from './types.js';
import { matchesWhere, pastPosition, timeOrder } from './where.js';

/** Past this many readings the store has yet to write, a query waits for the store instead (it is catching up). */
export const MOST_TAIL = 20_000;
/** The parsed tail is let go when no query came for this long. */
const KEEP_MS = 60_000;
/** Readings parsed per read of the log. */
const READ = 5000;
/**
 * Tail readings a query looks at between turns of the event loop: a tail of 20,000 folded for an
 * aggregate held the loop 40-80 ms at a time (and the PUBACKs waiting behind it); 1,000 a slice still
 * held it 2-3 ms, and a PUBACK waits for several turns (read, commit, sync, answer): 200 is about
 * 0.5 ms.
 */
const SLICE = 200;

/** The readings of `records` that `keep` takes, looked at a slice at a time. */
async function sliced(records: LogRecord[], keep: (r: LogRecord) => boolean): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  await inSlices(
    records.length,
    (from, to) => {
      for (let i = from; i < to; i++) if (keep(records[i])) out.push(records[i]);
    },
    SLICE,
  );
  return out;
}

/** The log's readings past the store's cursor, and the seqs they stand for (none when the store has everything). */
export interface Tail {
  records: LogRecord[];
  covers: SeqRange | undefined;
  /** Bumped when the readings were parsed again (a time correction learned since): folds kept from before are stale. */
  parse: number;
}

export interface TailSource {
  log: DurableLog;
  /** The store's consumer name: its cursor is where the store's readings end. */
  consumer: string;
  /** While the clock holds consumers the tail's times are not final: a query shows none of it (as the store would not). */
  holding(): boolean;
  offsets(): ClockOffsets;
}

/** The readings the log holds past the store's cursor, parsed. */
export class StoreTail {
  /** Every reading the log still has in (from, records.at(-1).seq], in seq order. */
  private records: LogRecord[] = [];
  private from = 0;
  private offsetsKey = '';
  private parse = 0;
  /** `records` went to a query (which may still be going through it): copied before it changes. */
  private handedOut = false;
  private turn: Promise<unknown> = Promise.resolve();
  private letGo: NodeJS.Timeout | undefined;

  constructor(private readonly src: TailSource) {}

  /** Where the store's readings end: everything up to it is in the store. */
  through(): number {
    return this.src.log.cursor(this.src.consumer);
  }

  /**
   * The readings past `through` and the seqs they stand for (the store's own rows there are left
   * out of a query); undefined when there are more than MOST_TAIL or the log cannot give them.
   */
  after(through: number): Promise<Tail | undefined> {
    const next = this.turn.then(() => this.extend(through));
    this.turn = next.catch(() => undefined);
    return next;
  }

  private async extend(through: number): Promise<Tail | undefined> {
    const { log } = this.src;
    const last = log.lastSeq;
    if (last - through > MOST_TAIL) return undefined;
    if (this.src.holding()) return { records: [], covers: undefined, parse: this.parse };
    const offsets = this.src.offsets();
    const key = JSON.stringify(offsets);
    // A time correction learned since, or a store that went back: parse again.
    if (key !== this.offsetsKey || through < this.from) {
      [this.records, this.from, this.offsetsKey] = [[], through, key];
      this.parse++;
    }
    const kept = firstAfter(this.records, through);
    if (kept > 0) [this.records, this.handedOut] = [this.records.slice(kept), false];
    this.from = through;
    let after = this.records.at(-1)?.seq ?? through;
    try {
      while (after < last) {
        const texts = await log.readTexts(this.src.consumer, after, Math.min(READ, last - after), true);
        if (!texts) break;
        const records = this.writable();
        for (const line of texts.lines()) records.push(decodeRecord(line, texts.agentId, offsets));
        after = texts.lastSeq;
      }
    } catch {
      return undefined; // a chunk damaged or gone meanwhile: the caller falls back to the store
    }
    this.keep();
    // The same array for every query until readings come: a hundred queries at once (aliases) copied 20,000 readings each.
    const past = (this.records.at(-1)?.seq ?? 0) > last;
    this.handedOut ||= !past;
    return {
      records: past ? this.records.filter((r) => r.seq <= last) : this.records,
      covers: last > through ? { after: through, through: last } : undefined,
      parse: this.parse,
    };
  }

  private writable(): LogRecord[] {
    if (this.handedOut) [this.records, this.handedOut] = [this.records.slice(), false];
    return this.records;
  }

  private keep(): void {
    clearTimeout(this.letGo);
    this.letGo = setTimeout(() => (this.records = []), KEEP_MS).unref();
  }
}

/** Does a tail reading meet the query? */
function meets(r: LogRecord, q: StoreQuery): boolean {
  const desc = q.order === 'desc';
  return (
    (q.topic === undefined || topicMatches(q.topic, r.topic)) &&
    (q.from === undefined || r.receivedAt >= q.from) &&
    (q.to === undefined || r.receivedAt <= q.to) &&
    (q.afterSeq === undefined || r.seq > q.afterSeq) &&
    (q.after === undefined || pastPosition(r, q.after, desc)) &&
    matchesWhere(r, q.where)
  );
}

const merge = async (stored: LogRecord[], tail: LogRecord[], q: StoreQuery, upTo?: Position) => {
  const desc = q.order === 'desc';
  const more = await sliced(tail, (r) => meets(r, q) && (!upTo || !pastPosition(r, upTo, desc)));
  return more.length ? [...stored, ...more].sort(timeOrder(desc)).slice(0, q.limit ?? 1000) : stored;
};

/**
 * The store as queries see it: its readings up to the store's cursor, merged with the log's tail.
 * `waitForStore`: the other way, for a tail too long to merge (the store writes what waits first).
 */
export function withTail(store: LocalStore, tail: StoreTail, waitForStore: () => Promise<unknown>): LocalStore {
  const folds = new TailFolds();
  const reads: Pick<LocalStore, 'query' | 'page' | 'fold'> = {
    async query(q, asker) {
      const recent = await tail.after(tail.through());
      if (!recent) return waitForStore().then(() => store.query(q, asker));
      return merge(await store.query({ ...q, exceptSeqs: recent.covers }, asker), recent.records, q);
    },
    async page(q, asker) {
      const recent = await tail.after(tail.through());
      if (!recent) return waitForStore().then(() => store.page(q, asker));
      const { records, scannedTo } = await store.page({ ...q, exceptSeqs: recent.covers }, asker);
      // A page cut short by maxScan covers the order up to scannedTo only: the tail past it is for later pages.
      const merged = await merge(records, recent.records, q, scannedTo);
      return scannedTo && merged.length < (q.limit ?? 1000) ? { records: merged, scannedTo } : { records: merged };
    },
    async fold(q, asker) {
      const recent = await tail.after(tail.through());
      if (!recent) return waitForStore().then(() => store.fold(q, asker));
      const result = await store.fold({ ...q, exceptSeqs: recent.covers }, asker);
      return result.more ? result : folds.fold(result, recent, q);
    },
  };
  return new Proxy(store, {
    get: (target, key) => {
      if (key in reads) return reads[key as keyof typeof reads];
      const value = target[key as keyof LocalStore];
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** Folds of the tail kept for the next query of the same range. */
const KEEP_FOLDS = 16;

interface KeptFold {
  /** The tail it was folded from: its start (the store's cursor) and parse. */
  after: number;
  parse: number;
  /** The tail's readings up to this seq are in `part`, `count` of them in the range. */
  lastSeq: number;
  part: Folded;
  count: number;
}

/**
 * The tail's readings of an aggregate's range, folded once and then only as readings come: ten
 * clients drawing the same chart folded the same thousands of readings ten times over (a fifth of
 * the main thread's longest busy periods under the abuse benchmark). A fold is kept until the store
 * writes (the tail then starts later) or the readings are parsed again.
 */
class TailFolds {
  private readonly kept = new Map<string, KeptFold>();
  /** One fold at a time: two at once would fold the same readings into one kept fold. */
  private turn: Promise<unknown> = Promise.resolve();

  /** `result` (the store's part) with the tail's readings of the range, up to maxScan in all. */
  fold(result: FoldResult, recent: Tail, q: FoldQuery): Promise<FoldResult> {
    const next = this.turn.then(() => this.foldNow(result, recent, q));
    this.turn = next.catch(() => undefined);
    return next;
  }

  private async foldNow(result: FoldResult, recent: Tail, q: FoldQuery): Promise<FoldResult> {
    const key = JSON.stringify([q.topic, q.from, q.to, q.width, q.fields]);
    const after = recent.covers?.after ?? -1;
    const kept = this.kept.get(key);
    // A fold past this query's tail (asked for later, done first) may hold readings its store part has too.
    const usable = kept && kept.after === after && kept.parse === recent.parse && kept.lastSeq <= (recent.covers?.through ?? -1);
    const fold = usable ? kept : { after, parse: recent.parse, lastSeq: -1, part: new Map(), count: 0 };
    const budget = q.maxScan - result.folded;
    if (fold.count > budget) return { series: result.series, folded: q.maxScan, more: true };
    const more = await foldInto(fold, newerThan(recent.records, fold.lastSeq), q, budget);
    this.kept.delete(key); // the newest last: the first is the one to let go
    if (!more) this.kept.set(key, fold);
    if (this.kept.size > KEEP_FOLDS) this.kept.delete(this.kept.keys().next().value!);
    mergeFolded(result.series, copyOf(fold.part));
    return { series: result.series, folded: result.folded + fold.count, more };
  }
}

/** The index of the first reading past `seq` (records are in seq order); their length if none is. */
function firstAfter(records: LogRecord[], seq: number): number {
  let [lo, hi] = [0, records.length];
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (records[mid].seq <= seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The readings past `seq`. */
const newerThan = (records: LogRecord[], seq: number) => {
  const at = firstAfter(records, seq);
  return at ? records.slice(at) : records;
};

/** Fold `records` of the range into `fold`, up to `budget` in all; true when the range holds more. */
async function foldInto(fold: KeptFold, records: LogRecord[], q: FoldQuery, budget: number): Promise<boolean> {
  const covered = coveredBy({ topics: [q.topic] });
  const inRange = (r: LogRecord) =>
    covered(r.topic) && (q.from === undefined || r.receivedAt >= q.from) && (q.to === undefined || r.receivedAt <= q.to);
  let more = false;
  await inSlices(
    records.length,
    (from, to) => {
      for (let i = from; i < to; i++) {
        fold.lastSeq = records[i].seq;
        if (!inRange(records[i])) continue;
        if (fold.count === budget) return !(more = true);
        foldReading(fold.part, records[i], q.width, q.fields);
        fold.count++;
      }
    },
    SLICE,
  );
  return more;
}

/** A kept fold's series as new objects: the answer is the caller's to change, the fold goes on. */
const copyOf = (part: Folded): Folded =>
  new Map([...part].map(([key, s]) => [key, { ...s, points: new Map([...s.points].map(([at, stats]) => [at, { ...stats }])) }]));
