// The SQLite store itself. It runs in a worker thread (see sqlite.ts): its inserts and fsyncs
// must not hold up the event loop that acknowledges readings.
import { splitRecord, type LogRecord } from '../../log/format.js';
import Database from 'better-sqlite3-multiple-ciphers';
import { JOURNAL_MODE, JOURNAL_SIZE_LIMIT, openKeyed } from '../db/sqlite-open.js';
import type { ClockOffsets } from '../../ingest/clock-correction.js';
import type { StoreQuery } from './types.js';

interface Row {
  seq: number;
  agent_id: string;
  topic: string;
  received_at: number;
  device_time: number | null;
  clock_synced: number;
  clock_correction_ms: number | null;
  client_id: string;
  schema: string | null;
  qos: number;
  encoding: string | null;
  payload: string;
}

/**
 * Rows are kept lean (every byte is written to an SD card):
 * topics, client ids and schema ids are stored once in small tables and referenced by number.
 * The `readings` view puts the names back for queries. Payloads are JSON text, not JSONB: the
 * sqlite3 of Raspberry Pi OS bookworm (3.40) and Python's module there read only text.
 */
const READINGS_SELECT = `
  SELECT r.seq, (SELECT value FROM meta WHERE key = 'agent_id') AS agent_id, t.name AS topic, r.received_at,
         r.device_time, r.clock_synced, r.clock_correction_ms, c.name AS client_id, s.name AS schema, r.qos, r.encoding, r.payload
  FROM reading r JOIN topics t ON t.id = r.topic_id JOIN clients c ON c.id = r.client_ref LEFT JOIN schemas s ON s.id = r.schema_id`;

const INCREMENTAL = 2;
/** Pages given back per pruning step: a short hold on the store (a step of 5,000 readings frees about 200). */
const VACUUM_PAGES = 1024;

/** 1: payloads as JSON text that SQLite's JSON functions can read (0 kept JSONB); 2: clock_correction_ms. */
const LAYOUT_VERSION = 2;

const READING_TABLE = (name: string) => `
  CREATE TABLE ${name} (
    seq INTEGER PRIMARY KEY,
    topic_id INTEGER NOT NULL REFERENCES topics (id),
    received_at INTEGER NOT NULL,
    device_time INTEGER,
    clock_synced INTEGER NOT NULL,
    client_ref INTEGER NOT NULL REFERENCES clients (id),
    schema_id INTEGER REFERENCES schemas (id),
    qos INTEGER NOT NULL,
    encoding TEXT,
    -- what json_extract cannot read (nested past 1,000, say) is refused here, not found broken later
    payload TEXT NOT NULL CHECK (encoding IS NOT NULL OR json_valid(payload)),
    -- set when received_at was corrected after the clock synchronised: by how much (ms)
    clock_correction_ms INTEGER
  )`;

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS topics (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
  CREATE TABLE IF NOT EXISTS clients (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
  CREATE TABLE IF NOT EXISTS schemas (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
  -- Payload bytes per topic, kept as readings come and go: what retention by size per topic reads.
  CREATE TABLE IF NOT EXISTS topic_size (topic_id INTEGER PRIMARY KEY REFERENCES topics (id), bytes INTEGER NOT NULL);
`;

const INDEX_AND_VIEW = `
  CREATE INDEX IF NOT EXISTS reading_topic_time ON reading (topic_id, received_at);
  -- All topics in time order (with the rowid, seq, as the last key): pages and exports without a sort.
  CREATE INDEX IF NOT EXISTS reading_time ON reading (received_at);
  CREATE VIEW IF NOT EXISTS readings AS ${READINGS_SELECT};
`;

/** Create the reading table, or bring one of an older layout to this one (in one transaction). */
function migrate(db: Database.Database): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version === LAYOUT_VERSION) {
    db.exec(INDEX_AND_VIEW);
    return;
  }
  if (version > LAYOUT_VERSION)
    throw new Error(`store layout ${version} is newer than this agent's (${LAYOUT_VERSION}); upgrade the agent`);
  const exists = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'reading'").get();
  db.transaction(() => {
    if (!exists) {
      db.exec(READING_TABLE('reading'));
    } else if (version === 1) {
      db.exec('DROP VIEW IF EXISTS readings; ALTER TABLE reading ADD COLUMN clock_correction_ms INTEGER;');
    } else {
      db.exec(`DROP VIEW IF EXISTS readings; ${READING_TABLE('reading_next')};
        INSERT INTO reading_next SELECT seq, topic_id, received_at, device_time, clock_synced, client_ref, schema_id, qos, encoding,
          CASE WHEN encoding IS NULL THEN json(payload) ELSE payload END, NULL FROM reading;
        DROP TABLE reading; ALTER TABLE reading_next RENAME TO reading;`);
    }
    db.exec(INDEX_AND_VIEW);
    db.pragma(`user_version = ${LAYOUT_VERSION}`);
  })();
}

/** name -> id for one of the small name tables, cached. */
class Names {
  private readonly ids = new Map<string, number>();
  private readonly find: Database.Statement;
  private readonly add: Database.Statement;

  constructor(db: Database.Database, table: string) {
    this.find = db.prepare(`SELECT id FROM ${table} WHERE name = ?`);
    this.add = db.prepare(`INSERT INTO ${table} (name) VALUES (?)`);
  }

  id(name: string): number {
    let id = this.ids.get(name);
    if (id === undefined) {
      id = (this.find.get(name) as { id: number } | undefined)?.id ?? Number(this.add.run(name).lastInsertRowid);
      this.ids.set(name, id);
    }
    return id;
  }

  known(name: string): number | undefined {
    return this.ids.get(name) ?? (this.find.get(name) as { id: number } | undefined)?.id;
  }

  /** After a rollback: ids given out in it no longer exist. */
  forget(): void {
    this.ids.clear();
  }
}

export class SqliteDb {
  private readonly db: Database.Database;
  private readonly insert: Database.Statement;
  private readonly insertRaw: Database.Statement;
  private readonly insertLines: (agentId: string, lines: string[], clock?: ClockOffsets) => void;
  private readonly topics: Names;
  private readonly clients: Names;
  private readonly schemas: Names;

  /** `readonly`: for a reader beside the agent (`edge-agent export`): it changes nothing, not even the layout. */
  constructor(path: string, key?: Buffer, readonly = false) {
    this.db = openKeyed(path, key, readonly);
    if (readonly) this.db.pragma('busy_timeout = 5000');
    else this.setUp();
    this.topics = new Names(this.db, 'topics');
    this.clients = new Names(this.db, 'clients');
    this.schemas = new Names(this.db, 'schemas');
    const setAgent = this.db.prepare(
      "INSERT INTO meta (key, value) VALUES ('agent_id', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    );
    // Idempotent on seq only: OR IGNORE would also skip a row its CHECK refuses, silently.
    this.insert = this.db.prepare('INSERT INTO reading VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?) ON CONFLICT (seq) DO NOTHING');
    this.insertRaw = this.db.prepare("INSERT INTO reading VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'base64', ?, ?) ON CONFLICT (seq) DO NOTHING");
    let agent: string | undefined;
    const grow = this.db.prepare(
      'INSERT INTO topic_size VALUES (?, ?) ON CONFLICT (topic_id) DO UPDATE SET bytes = bytes + excluded.bytes',
    );
    const insertLines = this.db.transaction((agentId: string, lines: string[], clock: ClockOffsets | undefined) => {
      if (agent !== agentId) setAgent.run(agentId);
      agent = agentId;
      const added = new Map<number, number>();
      for (const line of lines) {
        const { head: h, payloadJson: payload } = splitRecord(line, clock);
        const topic = this.topics.id(h.topic);
        const stored = h.encoding ? (JSON.parse(payload) as string) : payload;
        const { changes } = (h.encoding ? this.insertRaw : this.insert).run(
          h.seq,
          topic,
          h.receivedAt,
          h.deviceTime ?? null,
          h.clockSynced ? 1 : 0,
          this.clients.id(h.clientId),
          h.schema === undefined ? null : this.schemas.id(h.schema),
          h.qos,
          stored,
          h.clockCorrectionMs ?? null,
        );
        if (changes) added.set(topic, (added.get(topic) ?? 0) + Buffer.byteLength(stored));
      }
      for (const [topic, bytes] of added) grow.run(topic, bytes);
    });
    // A failed transaction is rolled back, and so must be what this side cached during it.
    this.insertLines = (agentId, lines, clock) => {
      try {
        insertLines(agentId, lines, clock);
      } catch (err) {
        agent = undefined;
        for (const names of [this.topics, this.clients, this.schemas]) names.forget();
        throw err;
      }
    };
  }

  private setUp(): void {
    // A rollback journal, not WAL: rows are appended at the end of the table, and only the few pages
    // a batch changes in place are journalled, where WAL writes every page twice (to the WAL, then at
    // checkpoint): about half the bytes on the SD card (1.6x the payload against 2.9x, measured). The
    // cost: a reader (sqlite3) holds the next write back while its query runs (the agent's own run in
    // slices: sqlite.ts); the write waits up to busy_timeout, then is retried, and the log keeps the
    // readings meanwhile.
    // PERSIST, not TRUNCATE or DELETE: the journal keeps its size and blocks, so its syncs change no
    // metadata and cost the filesystem's journal nothing (two of a transaction's three ext4 commits).
    this.db.pragma(`journal_mode = ${JOURNAL_MODE}`);
    this.db.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT}`);
    // FULL: a stored batch survives power loss before the log cursor moves past it.
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    // Space of pruned readings is given back a few pages at a time (incremental_vacuum); a database
    // made before this is converted once, by a VACUUM.
    if (this.db.pragma('auto_vacuum', { simple: true }) !== INCREMENTAL) {
      this.db.pragma(`auto_vacuum = ${INCREMENTAL}`);
      try {
        this.db.exec('VACUUM');
      } catch {
        // No room for the copy a VACUUM makes (a full disk): pruned pages are reused in place instead.
      }
    }
    this.db.exec(SCHEMA);
    migrate(this.db);
    if (!this.db.prepare('SELECT 1 FROM topic_size LIMIT 1').get()) {
      this.db.exec('INSERT INTO topic_size SELECT topic_id, sum(length(CAST(payload AS BLOB))) FROM reading GROUP BY topic_id'); // a store from before sizes were kept
    }
  }

  lastSeq(): number {
    return (this.db.prepare('SELECT max(seq) AS seq FROM reading').get() as { seq: number | null }).seq ?? 0;
  }

  write(agentId: string, lines: string[], clock?: ClockOffsets): void {
    this.insertLines(agentId, lines, clock);
  }

  /** Readings in time order (either way) on the query's topics; the caller applies field conditions and the limit. */
  *query(q: StoreQuery, matches?: (topic: string) => boolean): Generator<LogRecord> {
    const where: string[] = [];
    const args: Record<string, unknown> = {};
    const add = (clause: string, key: string, value: unknown) => {
      where.push(clause);
      args[key] = value;
    };
    if (q.topic !== undefined && !/[+#]/.test(q.topic)) add('r.topic_id = @topic', 'topic', this.topics.known(q.topic) ?? -1);
    else if (q.topic !== undefined && matches) {
      const ids = this.topicIds(matches);
      // Several topics: walk the time index (`+` keeps SQLite off the topic index, which would sort
      // every matching reading for each page); all of them: no condition at all.
      if (ids.length < this.topicCount()) where.push(`+r.topic_id IN (${ids.join(',')})`);
    }
    if (q.from !== undefined) add('r.received_at >= @from', 'from', q.from);
    if (q.to !== undefined) add('r.received_at <= @to', 'to', q.to);
    if (q.afterSeq !== undefined) add('r.seq > @afterSeq', 'afterSeq', q.afterSeq);
    // `+`: a condition to check, not an index to walk (the time index gives the order).
    if (q.exceptSeqs) {
      where.push('NOT (+r.seq > @exceptAfter AND +r.seq <= @exceptThrough)');
      args.exceptAfter = q.exceptSeqs.after;
      args.exceptThrough = q.exceptSeqs.through;
    }
    const desc = q.order === 'desc';
    if (q.after) {
      where.push(`(r.received_at, r.seq) ${desc ? '<' : '>'} (@afterAt, @afterPos)`);
      args.afterAt = q.after.at;
      args.afterPos = q.after.seq;
    }
    const dir = desc ? 'DESC' : 'ASC';
    const sql = `${READINGS_SELECT} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY r.received_at ${dir}, r.seq ${dir}`;
    for (const row of this.db.prepare(sql).iterate(args) as IterableIterator<Row>) yield toRecord(row);
  }

  /** One step of a removal on request: up to `limit` readings of the topics received in [from, to]. */
  removeStep(topicIds: number[], from: number, to: number, limit: number): { deleted: number; done: boolean } {
    if (!topicIds.length) return { deleted: 0, done: true };
    const deleted = this.db.transaction(() =>
      this.deleteWhere(`topic_id IN (${topicIds.join(',')}) AND received_at BETWEEN ? AND ?`, [from, to], limit),
    )();
    const free = this.db.pragma('freelist_count', { simple: true }) as number;
    if (free > 0) this.db.pragma(`incremental_vacuum(${VACUUM_PAGES})`);
    return { deleted, done: deleted < limit && free <= VACUUM_PAGES };
  }

  /**
   * One step of pruning: up to `limit` readings of the topics received before `before` (and with seq
   * up to `throughSeq`), oldest first; then the pages they freed are given back to the filesystem.
   */
  pruneStep(topicIds: number[], before: number, throughSeq: number, limit: number): { deleted: number; done: boolean } {
    let deleted = 0;
    if (topicIds.length) {
      // One transaction: the readings and their bytes in topic_size go together.
      deleted = this.db.transaction(() => this.deleteOldest(topicIds, before, throughSeq, limit))();
    }
    const free = this.db.pragma('freelist_count', { simple: true }) as number;
    if (free > 0) this.db.pragma(`incremental_vacuum(${VACUUM_PAGES})`);
    return { deleted, done: deleted === 0 && free <= VACUUM_PAGES };
  }

  private deleteOldest(topicIds: number[], before: number, throughSeq: number, limit: number): number {
    return this.deleteWhere(`topic_id IN (${topicIds.join(',')}) AND received_at < ? AND seq <= ?`, [before, throughSeq], limit);
  }

  /** Delete the oldest `limit` readings meeting the condition, and their bytes from topic_size. */
  private deleteWhere(condition: string, args: number[], limit: number): number {
    const gone = this.db
      .prepare(
        `DELETE FROM reading WHERE seq IN (SELECT seq FROM reading WHERE ${condition} ORDER BY seq LIMIT ?) RETURNING topic_id, length(CAST(payload AS BLOB)) AS bytes`,
      )
      .all(...args, limit) as { topic_id: number; bytes: number }[];
    const shrink = this.db.prepare('UPDATE topic_size SET bytes = max(0, bytes - ?) WHERE topic_id = ?');
    const removed = new Map<number, number>();
    for (const g of gone) removed.set(g.topic_id, (removed.get(g.topic_id) ?? 0) + g.bytes);
    for (const [topic, bytes] of removed) shrink.run(bytes, topic);
    return gone.length;
  }

  /** Payload bytes of the readings on these topics. */
  topicBytes(topicIds: number[]): number {
    if (!topicIds.length) return 0;
    return (
      this.db.prepare(`SELECT coalesce(sum(bytes), 0) AS n FROM topic_size WHERE topic_id IN (${topicIds.join(',')})`).get() as {
        n: number;
      }
    ).n;
  }

  /** Bytes the database holds (its pages, less free ones). */
  size(): number {
    const pages =
      (this.db.pragma('page_count', { simple: true }) as number) - (this.db.pragma('freelist_count', { simple: true }) as number);
    return pages * (this.db.pragma('page_size', { simple: true }) as number);
  }

  private topicCount(): number {
    return (this.db.prepare('SELECT count(*) AS n FROM topics').get() as { n: number }).n;
  }

  /** Ids of the topics a pattern list matches. */
  topicIds(matches: (topic: string) => boolean): number[] {
    return (this.db.prepare('SELECT id, name FROM topics').all() as { id: number; name: string }[])
      .filter((t) => matches(t.name))
      .map((t) => t.id);
  }

  close(): void {
    this.db.close();
  }
}

function toRecord(row: Row): LogRecord {
  return {
    seq: row.seq,
    agentId: row.agent_id,
    topic: row.topic,
    receivedAt: row.received_at,
    clockSynced: row.clock_synced === 1,
    ...(row.clock_correction_ms !== null ? { clockCorrectionMs: row.clock_correction_ms } : {}),
    ...(row.device_time !== null ? { deviceTime: row.device_time } : {}),
    payload: row.encoding ? row.payload : JSON.parse(row.payload),
    ...(row.encoding ? { encoding: row.encoding as 'base64' } : {}),
    clientId: row.client_id,
    ...(row.schema !== null ? { schema: row.schema } : {}),
    qos: row.qos as 0 | 1 | 2,
  };
}
