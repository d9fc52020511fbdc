// The rollups' database: per series, numeric field and bucket, the statistics of the readings in
// it, updated a batch at a time. The seq of the last reading applied is stored in the same
// transaction, so a batch read again after a crash is skipped, never counted twice.
import { splitRecord } from '../../log/format.js';
import type Database from 'better-sqlite3-multiple-ciphers';
import { JOURNAL_MODE, JOURNAL_SIZE_LIMIT, openKeyed } from '../db/sqlite-open.js';
import type { ClockOffsets } from '../../ingest/clock-correction.js';
import { bucketStart, Extractor, type SeriesRule } from './extract.js';
import { add, merge, single, stddev, type Stats } from './stats.js';

export interface RollupQuery {
  /** Exact topic or MQTT pattern (+, #); the caller filters patterns. */
  topic?: string;
  /** Bucket width, ms. */
  width: number;
  /** Bucket start range, ms since the epoch, inclusive. */
  from?: number;
  to?: number;
  fields?: string[];
  limit?: number;
}

export interface RollupRow {
  topic: string;
  tags: Record<string, string>;
  field: string;
  width: number;
  start: number;
  count: number;
  min: number;
  max: number;
  sum: number;
  mean: number;
  stddev: number | null;
  last: number;
}

export interface RollupPrune {
  /** Series on these topics... */
  topicIds: number[];
  widths: number[];
  /** ...whose buckets ended before this (ms since the epoch). */
  before: number;
}

/**
 * Buckets ordered by width, then time: a transaction's new and updated buckets sit together at the
 * end of each width's range, a few pages, where ordering by series and field first scattered them
 * over a page per series and field (each journalled and written: 370 kB a transaction at ten sensors,
 * growing with the days kept). Queries ask for a width and a time range, and order by time.
 */
const ROLLUP_TABLE = (name: string) => `
  CREATE TABLE IF NOT EXISTS ${name} (
    width INTEGER NOT NULL, series_id INTEGER NOT NULL REFERENCES series (id), field_id INTEGER NOT NULL REFERENCES fields (id),
    start INTEGER NOT NULL, count INTEGER NOT NULL, min REAL NOT NULL, max REAL NOT NULL, sum REAL NOT NULL,
    mean REAL NOT NULL, m2 REAL NOT NULL, last REAL NOT NULL, last_seq INTEGER NOT NULL,
    PRIMARY KEY (width, start, series_id, field_id)
  ) WITHOUT ROWID;`;

/** The order of an earlier release, converted once at open. */
const ROLLUP_KEY_BEFORE = 'PRIMARY KEY (width, series_id, field_id, start)';

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS series (id INTEGER PRIMARY KEY, topic TEXT NOT NULL, tags TEXT NOT NULL, UNIQUE (topic, tags));
  CREATE TABLE IF NOT EXISTS fields (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
  ${ROLLUP_TABLE('rollup')}
  -- Buckets of the widths sinks take, with readings since they were last sent, and the buckets as
  -- they are closed (revision: consecutive, the seq a rollup sink's cursor counts in).
  CREATE TABLE IF NOT EXISTS open_bucket (width INTEGER NOT NULL, series_id INTEGER NOT NULL, start INTEGER NOT NULL, PRIMARY KEY (width, series_id, start)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS emitted (revision INTEGER PRIMARY KEY, width INTEGER NOT NULL, series_id INTEGER NOT NULL, start INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS cursors (name TEXT PRIMARY KEY, revision INTEGER NOT NULL);
  CREATE VIEW IF NOT EXISTS rollups AS
    SELECT s.topic, s.tags, f.name AS field, r.width AS width_ms, r.start, r.count, r.min, r.max, r.sum, r.mean,
           CASE WHEN r.count > 1 THEN sqrt(r.m2 / (r.count - 1)) END AS stddev, r.last
    FROM rollup r JOIN series s ON s.id = r.series_id JOIN fields f ON f.id = r.field_id;
`;

const VACUUM_PAGES = 256;

/** The payload, or undefined when it is not JSON (nothing to roll up). */
function parsed(json: string): unknown {
  try {
    return JSON.parse(json);
  } catch {
    return undefined;
  }
}

/** The statistics of one bucket of one series and field, gathered within a batch. */
interface Cell {
  width: number;
  series: number;
  field: number;
  start: number;
  stats: Stats;
}

interface StatsRow extends Stats {
  last_seq: number;
}

/** A closed bucket of one series, as a rollup sink gets it: all its fields. */
export interface EmittedBucket {
  revision: number;
  topic: string;
  tags: Record<string, string>;
  width: number;
  start: number;
  fields: Record<string, Omit<RollupRow, 'topic' | 'tags' | 'field' | 'width' | 'start'>>;
}

export class RollupDb {
  private readonly db: Database.Database;
  private readonly extractor: Extractor;
  private readonly seriesIds = new Map<string, number>();
  private readonly fieldIds = new Map<string, number>();
  private readonly apply: (lines: string[], clock?: ClockOffsets) => number;
  /** Numeric fields past maxFields, since this opened. */
  ignoredFields = 0;

  /** A database of an earlier release keeps buckets by series first: copied once into the order by time. */
  private reorderBuckets(): void {
    const table = this.db.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'rollup'").get() as
      { sql: string } | undefined;
    if (!table?.sql.includes(ROLLUP_KEY_BEFORE)) return;
    this.db.transaction(() => {
      this.db.exec(`${ROLLUP_TABLE('rollup_by_time')}
        INSERT INTO rollup_by_time SELECT * FROM rollup;
        DROP VIEW IF EXISTS rollups;
        DROP TABLE rollup;
        ALTER TABLE rollup_by_time RENAME TO rollup;`);
    })();
  }

  constructor(
    path: string,
    private readonly widths: number[],
    rules: SeriesRule[],
    maxFields: number,
    key?: Buffer,
    /** Bucket widths rollup sinks take: their buckets are closed and numbered as time passes... */
    private readonly emitWidths: number[] = [],
    /** ...this long after they ended: readings in flight reach them first. */
    private readonly closeAfterMs = 10_000,
  ) {
    this.db = openKeyed(path, key);
    this.db.pragma(`journal_mode = ${JOURNAL_MODE}`); // as the store: fewer bytes on the SD card than WAL or TRUNCATE
    this.db.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT}`);
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    if (this.db.pragma('auto_vacuum', { simple: true }) !== 2) {
      this.db.pragma('auto_vacuum = 2');
      try {
        this.db.exec('VACUUM');
      } catch {
        // No room for the copy (a full disk): freed pages are reused in place instead.
      }
    }
    this.reorderBuckets();
    this.db.exec(SCHEMA);
    this.extractor = new Extractor(rules, maxFields);
    const get = this.db.prepare(
      'SELECT count, min, max, sum, mean, m2, last, last_seq FROM rollup WHERE width = ? AND series_id = ? AND field_id = ? AND start = ?',
    );
    const put = this.db.prepare('INSERT OR REPLACE INTO rollup VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)');
    const setApplied = this.db.prepare("INSERT OR REPLACE INTO meta VALUES ('applied_seq', ?)");
    const setWatermark = this.db.prepare("INSERT OR REPLACE INTO meta VALUES ('watermark', ?)");
    const opened = this.db.prepare('INSERT OR IGNORE INTO open_bucket VALUES (?, ?, ?)');
    const applyTx = this.db.transaction((lines: string[], clock: ClockOffsets | undefined) => {
      const applied = this.appliedSeq();
      // Per series and field, the bucket of each width readings are going into: consecutive readings
      // mostly share them, so a value is added in place; a new bucket starts another cell.
      const batch = new Map<number, { series: number; field: number; current: (Cell | undefined)[] }>();
      const cells: Cell[] = [];
      let last = applied;
      let watermark = this.watermark();
      for (const line of lines) {
        const { head, payloadJson } = splitRecord(line, clock);
        if (head.seq <= applied) continue;
        last = Math.max(last, head.seq);
        watermark = Math.max(watermark, head.receivedAt);
        if (head.encoding) continue;
        const sample = this.extractor.sample(head.topic, parsed(payloadJson));
        if (!sample) continue;
        this.ignoredFields += sample.ignored;
        const series = this.seriesId(head.topic, sample.tags);
        for (const [name, value] of sample.fields) {
          const field = this.fieldId(name);
          const key = series * 1_000_000 + field;
          let entry = batch.get(key);
          if (!entry) batch.set(key, (entry = { series, field, current: [] }));
          for (let w = 0; w < this.widths.length; w++) {
            const start = bucketStart(head.receivedAt, this.widths[w]);
            const cell = entry.current[w];
            if (cell && cell.start === start) {
              add(cell.stats, value, head.seq);
            } else {
              const fresh = { width: this.widths[w], series, field, start, stats: single(value, head.seq) };
              entry.current[w] = fresh;
              cells.push(fresh);
            }
          }
        }
      }
      // Cells of the same bucket (the clock went back within a batch) merge through the row, one after the other.
      for (const { width, series, field, start, stats } of cells) {
        const row = get.get(width, series, field, start) as StatsRow | undefined;
        const s = row ? merge({ ...row, lastSeq: row.last_seq }, stats) : stats;
        put.run(width, series, field, start, s.count, s.min, s.max, s.sum, s.mean, s.m2, s.last, s.lastSeq);
        if (this.emitWidths.includes(width)) opened.run(width, series, start);
      }
      if (last > applied) setApplied.run(last);
      setWatermark.run(watermark);
      if (this.emitWidths.length) this.closeBuckets(watermark);
      return last;
    });
    this.apply = (lines, clock) => {
      try {
        return applyTx(lines, clock);
      } catch (err) {
        // Rolled back: ids handed out in it are gone.
        this.seriesIds.clear();
        this.fieldIds.clear();
        throw err;
      }
    };
  }

  /** Highest seq whose reading is in the rollups. */
  appliedSeq(): number {
    const row = this.db.prepare("SELECT value FROM meta WHERE key = 'applied_seq'").get() as { value: string } | undefined;
    return row ? Number(row.value) : 0;
  }

  /** Latest receive time among the readings applied. */
  private watermark(): number {
    const row = this.db.prepare("SELECT value FROM meta WHERE key = 'watermark'").get() as { value: string } | undefined;
    return row ? Number(row.value) : 0;
  }

  /** Highest revision given to a closed bucket. */
  lastRevision(): number {
    const row = this.db.prepare("SELECT value FROM meta WHERE key = 'revision'").get() as { value: string } | undefined;
    return row ? Number(row.value) : 0;
  }

  /**
   * Close the open buckets that ended closeAfterMs before `now` (the latest reading applied, or the
   * clock once the rollups are caught up): each gets the next revision. A late reading for a closed
   * bucket (the clock went back) opens it again, and it is sent again with its new figures.
   */
  closeBuckets(now: number): number {
    const due = this.db
      .prepare('SELECT width, series_id, start FROM open_bucket WHERE start + width + ? <= ? ORDER BY start, width, series_id')
      .all(this.closeAfterMs, now) as { width: number; series_id: number; start: number }[];
    if (!due.length) return this.lastRevision();
    const emit = this.db.prepare('INSERT INTO emitted VALUES (?, ?, ?, ?)');
    const close = this.db.prepare('DELETE FROM open_bucket WHERE width = ? AND series_id = ? AND start = ?');
    let revision = this.lastRevision();
    this.db.transaction(() => {
      for (const b of due) {
        emit.run(++revision, b.width, b.series_id, b.start);
        close.run(b.width, b.series_id, b.start);
      }
      this.db.prepare("INSERT OR REPLACE INTO meta VALUES ('revision', ?)").run(revision);
    })();
    return revision;
  }

  /** Closed buckets with revision > after, up to `max`, in revision order, with their figures now. */
  emitted(after: number, max: number): EmittedBucket[] {
    const rows = this.db
      .prepare(
        `SELECT e.revision, e.width, e.start, s.topic, s.tags, f.name AS field, r.count, r.min, r.max, r.sum, r.mean, r.m2, r.last
        FROM (SELECT * FROM emitted WHERE revision > ? ORDER BY revision LIMIT ?) e JOIN series s ON s.id = e.series_id
        LEFT JOIN rollup r ON r.width = e.width AND r.series_id = e.series_id AND r.start = e.start LEFT JOIN fields f ON f.id = r.field_id
        ORDER BY e.revision, f.name`,
      )
      .all(after, max) as (StatsRow & {
      revision: number;
      width: number;
      start: number;
      topic: string;
      tags: string;
      field: string | null;
    })[];
    const out: EmittedBucket[] = [];
    for (const r of rows) {
      let bucket = out.at(-1);
      if (bucket?.revision !== r.revision)
        out.push((bucket = { revision: r.revision, topic: r.topic, tags: JSON.parse(r.tags), width: r.width, start: r.start, fields: {} }));
      // A bucket pruned by retention after it closed has no figures left: it is sent empty.
      if (r.field !== null)
        bucket.fields[r.field] = { count: r.count, min: r.min, max: r.max, sum: r.sum, mean: r.mean, stddev: stddev(r), last: r.last };
    }
    return out;
  }

  cursor(name: string): number {
    return (this.db.prepare('SELECT revision FROM cursors WHERE name = ?').get(name) as { revision: number } | undefined)?.revision ?? 0;
  }

  /** Move a rollup sink's cursor; closed buckets every sink has passed are forgotten. */
  commit(name: string, revision: number, consumers: string[]): void {
    this.db.transaction(() => {
      this.db
        .prepare('INSERT INTO cursors VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET revision = max(revision, excluded.revision)')
        .run(name, revision);
      const floor = Math.min(...consumers.map((c) => this.cursor(c)));
      this.db.prepare('DELETE FROM emitted WHERE revision <= ?').run(floor);
    })();
  }

  /** Cursors of sinks that no longer take rollups. */
  dropCursorsExcept(names: string[]): void {
    const keep = new Set(names);
    for (const { name } of this.db.prepare('SELECT name FROM cursors').all() as { name: string }[])
      if (!keep.has(name)) this.db.prepare('DELETE FROM cursors WHERE name = ?').run(name);
    if (!names.length) this.db.exec('DELETE FROM emitted; DELETE FROM open_bucket');
  }

  /** Add consecutive readings (JSON lines of the log); ones applied before are skipped. Returns the applied seq. */
  write(lines: string[], clock?: ClockOffsets): number {
    return this.apply(lines, clock);
  }

  private seriesId(topic: string, tags: string): number {
    const key = `${topic}\u0000${tags}`;
    let id = this.seriesIds.get(key);
    if (id === undefined) {
      const found = this.db.prepare('SELECT id FROM series WHERE topic = ? AND tags = ?').get(topic, tags) as { id: number } | undefined;
      id = found?.id ?? Number(this.db.prepare('INSERT INTO series (topic, tags) VALUES (?, ?)').run(topic, tags).lastInsertRowid);
      this.seriesIds.set(key, id);
    }
    return id;
  }

  private fieldId(name: string): number {
    let id = this.fieldIds.get(name);
    if (id === undefined) {
      const found = this.db.prepare('SELECT id FROM fields WHERE name = ?').get(name) as { id: number } | undefined;
      id = found?.id ?? Number(this.db.prepare('INSERT INTO fields (name) VALUES (?)').run(name).lastInsertRowid);
      this.fieldIds.set(name, id);
    }
    return id;
  }

  /** Buckets of one width in start order; the caller filters topic patterns and stops at its limit. */
  *query(q: RollupQuery): Generator<RollupRow> {
    const where = ['r.width = @width'];
    const args: Record<string, unknown> = { width: q.width };
    const add = (clause: string, key: string, value: unknown) => {
      where.push(clause);
      args[key] = value;
    };
    if (q.topic !== undefined && !/[+#]/.test(q.topic)) add('s.topic = @topic', 'topic', q.topic);
    if (q.from !== undefined) add('r.start >= @from', 'from', q.from);
    if (q.to !== undefined) add('r.start <= @to', 'to', q.to);
    if (q.fields?.length) {
      where.push(`f.name IN (${q.fields.map((_, i) => `@f${i}`).join(', ')})`);
      q.fields.forEach((f, i) => (args[`f${i}`] = f));
    }
    const sql = `SELECT s.topic, s.tags, f.name AS field, r.* FROM rollup r JOIN series s ON s.id = r.series_id JOIN fields f ON f.id = r.field_id
      WHERE ${where.join(' AND ')} ORDER BY r.start, s.topic, s.tags, f.name`;
    for (const r of this.db.prepare(sql).iterate(args) as IterableIterator<
      StatsRow & { topic: string; tags: string; field: string; width: number; start: number }
    >) {
      yield {
        topic: r.topic,
        tags: JSON.parse(r.tags),
        field: r.field,
        width: r.width,
        start: r.start,
        count: r.count,
        min: r.min,
        max: r.max,
        sum: r.sum,
        mean: r.mean,
        stddev: stddev(r),
        last: r.last,
      };
    }
  }

  /** Ids of the topics a predicate takes. */
  topicIds(matches: (topic: string) => boolean): number[] {
    return (this.db.prepare('SELECT id, topic FROM series').all() as { id: number; topic: string }[])
      .filter((s) => matches(s.topic))
      .map((s) => s.id);
  }

  /** One step: up to `limit` buckets the rule covers, oldest first; then pages given back. */
  pruneStep(rule: RollupPrune, limit: number): { deleted: number; done: boolean } {
    if (rule.topicIds.length && rule.widths.length) {
      const { changes } = this.db
        .prepare(
          `DELETE FROM rollup WHERE (width, series_id, field_id, start) IN (SELECT width, series_id, field_id, start FROM rollup
          WHERE width IN (${rule.widths.join(',')}) AND series_id IN (${rule.topicIds.join(',')}) AND start + width <= ? ORDER BY start LIMIT ?)`,
        )
        .run(rule.before, limit);
      if (changes > 0) return { deleted: changes, done: false };
    }
    const free = this.db.pragma('freelist_count', { simple: true }) as number;
    if (free > 0) this.db.pragma(`incremental_vacuum(${VACUUM_PAGES})`);
    return { deleted: 0, done: free <= VACUUM_PAGES };
  }

  /** The share of the database's bytes that these series' rollups hold, by rows. */
  seriesBytes(seriesIds: number[]): number {
    if (!seriesIds.length) return 0;
    const { rows, mine } = this.db
      .prepare(`SELECT count(*) AS rows, coalesce(sum(series_id IN (${seriesIds.join(',')})), 0) AS mine FROM rollup`)
      .get() as { rows: number; mine: number };
    return rows ? Math.round((this.size() * mine) / rows) : 0;
  }

  /** Bytes the database holds (its pages, less free ones). */
  size(): number {
    const pages =
      (this.db.pragma('page_count', { simple: true }) as number) - (this.db.pragma('freelist_count', { simple: true }) as number);
    return pages * (this.db.pragma('page_size', { simple: true }) as number);
  }

  close(): void {
    this.db.close();
  }
}
