import type { ChunkBatch, LogRecord } from '../../log/format.js';
import type { Stats } from '../rollups/stats.js';

export interface StoreQuery {
  /** Exact topic or MQTT pattern (+, #). */
  topic?: string;
  /** receivedAt range, ms since the epoch, inclusive. */
  from?: number;
  to?: number;
  /** Only readings with seq greater than this. */
  afterSeq?: number;
  /** Leave out readings with seq in (after, through]: the log's tail is merged in their place. */
  exceptSeqs?: SeqRange;
  /** Only readings past this one in the query's order: keyset paging. */
  after?: Position;
  /** By receive time, then seq (the order they were received); default asc. */
  order?: 'asc' | 'desc';
  /** Conditions on payload fields, all of which must hold. */
  where?: FieldFilter[];
  limit?: number;
  /** Look at no more than this many readings (SQLite): a page then ends early, and says where. */
  maxScan?: number;
}

/** The seqs in (after, through]. */
export interface SeqRange {
  after: number;
  through: number;
}

/** Where a reading stands in time order: its receive time, then its seq. */
export interface Position {
  at: number;
  seq: number;
}

/** A condition on a payload field: `path` is dotted (`a.b`), compared with `value`. */
export interface FieldFilter {
  path: string;
  op: '=' | '!=' | '<' | '<=' | '>' | '>=';
  value: string | number | boolean | null;
}

/** Readings to delete on request: on topics matching `topic`, received in [from, to]. */
export interface Removal {
  topic: string;
  from?: number;
  to?: number;
}

/** Readings to give up: on topics matching `topics`, received before `before` (ms since the epoch), with seq up to `throughSeq` if given. */
export interface PruneRule {
  topics: string[];
  before: number;
  throughSeq?: number;
  /** Patterns an earlier rule decides for (the first matching rule wins). */
  except?: string[];
}

/** Topics by pattern, less those an earlier rule decides for. */
export interface TopicCover {
  topics: string[];
  except?: string[];
}

/** One bounded step of pruning: what it deleted, whether more is left, and how long it held the store. */
export interface PruneStep {
  deleted: number;
  done: boolean;
  ms: number;
}

/**
 * Who a read is for. `name`: reads of different askers take turns (one asker's many reads do not
 * hold up another's); `signal`: the asker has gone, and the read stops between two slices.
 */
export interface Asker {
  name?: string;
  signal?: AbortSignal;
}

/** The local, queryable copy of the readings. Writes are idempotent on seq. */
export interface LocalStore {
  readonly kind: string;
  /** Store a batch of consecutive readings (the log's chunks); ones already stored are skipped. */
  write(batch: ChunkBatch): Promise<void>;
  /** How many writes may be outstanding at once, done in the order given (default 1). */
  readonly writesInFlight?: number;
  /** A query stops (between two slices of its work) and rejects when its asker has gone. */
  query(q: StoreQuery, asker?: Asker): Promise<LogRecord[]>;
  /** As query; `scannedTo`: maxScan ran out there, before `limit` readings were found (go on after it). */
  page(q: StoreQuery, asker?: Asker): Promise<{ records: LogRecord[]; scannedTo?: Position }>;
  /**
   * As page, the readings rendered as text where they are read (SQLite: in its thread), `before`:
   * readings of the export already written. Absent: render what `page` gives.
   */
  text?(q: StoreQuery, form: TextForm, before: number, asker?: Asker): Promise<TextPage>;
  /** The readings of a range folded into buckets (an aggregate), up to q.maxScan of them. */
  fold(q: FoldQuery, asker?: Asker): Promise<FoldResult>;
  /**
   * Delete up to `limit` readings the rule covers, oldest first, then give their space back, a step
   * at a time: call again until `done`, so writes go on in between.
   */
  prune(rule: PruneRule, limit: number): Promise<PruneStep>;
  /** Delete up to `limit` readings the removal covers, a step at a time: call until `done`. */
  remove(removal: Removal, limit: number): Promise<PruneStep>;
  /** Highest seq stored. */
  lastSeq(): number;
  /**
   * Bytes the readings take: on these topics (SQLite: their payloads' text; files: their files), or
   * in all (the database's pages in use, or every file).
   */
  size(topics?: TopicCover): Promise<number>;
  /** Bytes the store wrote to storage since it opened (SD-card wear); undefined where the system does not say. */
  writtenBytes(): number | undefined;
  close(): Promise<void>;
}

export const TEXT_FORMATS = ['csv', 'json', 'jsonl'] as const;
export type TextFormat = (typeof TEXT_FORMATS)[number];

/**
 * How readings become text. `fields`: payload fields (dotted paths) to keep, all when absent.
 * `columns` (CSV): the payload columns, learnt from the export's first page; a reading's other
 * fields go to `_extra` as JSON.
 */
export interface TextForm {
  format: TextFormat;
  fields?: string[];
  columns?: string[];
}

/** A page of readings as text pieces: how many, the last one's position, and where maxScan ran out. */
export interface TextPage {
  pieces: string[];
  rows: number;
  last?: Position;
  scannedTo?: Position;
}

export interface FoldQuery {
  /** Exact topic or MQTT pattern. */
  topic: string;
  from?: number;
  to?: number;
  /** Bucket width, ms. */
  width: number;
  /** Payload fields (dotted paths); every numeric top-level field when absent. */
  fields?: string[];
  /** Fold at most this many readings; a range holding more ends with `more`. */
  maxScan: number;
  /** Leave out readings with seq in (after, through]. */
  exceptSeqs?: SeqRange;
}

/** `topic\0field` -> that series' statistics by bucket start. */
export type Folded = Map<string, { topic: string; field: string; points: Map<number, Stats> }>;

export interface FoldResult {
  series: Folded;
  folded: number;
  /** The range holds more than maxScan readings: `series` is not all of it. */
  more: boolean;
}
