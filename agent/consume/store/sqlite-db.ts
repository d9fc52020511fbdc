// The SQLite store itself. It runs in a worker thread (see sqlite.ts): its inserts and fsyncs
// must not hold up the event loop that acknowledges readings.
import { splitRecord, type LogRecord } from '../../log/format.js';
import Database from 'better-sqlite3-multiple-ciphers';
import { JOURNAL_MODE, JOURNAL_SIZE_LIMIT, openKeyed } from '../db/sqlite-open.js';
import type { ClockOffsets } from '../../ingest/clock-correction.js';
import { BLOCK_READINGS, decodeBlock, encodeBlock, inOrder, mergeBlocks, uncompress, type BlockEntry, type BlockRef } from './blocks.js';
import type { StoreQuery } from './types.js';

/** A block's place, for the merge: its rows are read only when their turn may have come. */
interface BlockRow {
  id: number;
  topic_id: number;
  first_seq: number;
  first_at: number;
  last_at: number;
  size: number;
  data: Buffer;
}

/**
 * Readings are kept in blocks (blocks.ts): a topic's readings of one write in one deflated row,
 * appended at the end of the table, the only index entries a block's own. Topics, client ids and
 * schema ids are stored once in small tables and referenced by number. The `readings` view unpacks
 * the blocks for queries by hand (the sqlite3 shell has sqlar_uncompress; in Python or elsewhere,
 * define it: README); the agent decodes blocks itself. Payloads are JSON text (or a raw topic's
 * base64), not JSONB: the sqlite3 of Raspberry Pi OS bookworm (3.40) and Python's module there read
 * only text.
 */
const READINGS_VIEW = `
  CREATE VIEW IF NOT EXISTS readings AS
  SELECT b.first_seq + (j.value ->> '$[0]') AS seq, (SELECT value FROM meta WHERE key = 'agent_id') AS agent_id, t.name AS topic,
         b.first_at + (j.value ->> '$[1]') AS received_at, j.value ->> '$[2]' AS device_time, j.value ->> '$[3]' AS clock_synced,
         c.name AS client_id, s.name AS schema, j.value ->> '$[7]' AS qos, j.value ->> '$[8]' AS encoding,
         j.value ->> '$[9]' AS payload, j.value ->> '$[4]' AS clock_correction_ms
  FROM block b JOIN topics t ON t.id = b.topic_id
    JOIN json_each(CAST(sqlar_uncompress(b.data, b.size) AS TEXT)) j
    JOIN clients c ON c.id = j.value ->> '$[5]' LEFT JOIN schemas s ON s.id = j.value ->> '$[6]'`;

const INCREMENTAL = 2;
/** Pages given back per pruning step: a short hold on the store (a step of 5,000 readings frees about 200). */
const VACUUM_PAGES = 1024;

/** 1: payloads as JSON text that SQLite's JSON functions can read (0 kept JSONB); 2: clock_correction_ms; 3: blocks. */
const LAYOUT_VERSION = 3;

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS topics (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
  CREATE TABLE IF NOT EXISTS clients (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
  CREATE TABLE IF NOT EXISTS schemas (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
  -- Payload bytes per topic, kept as readings come and go: what retention by size per topic reads.
  CREATE TABLE IF NOT EXISTS topic_size (topic_id INTEGER PRIMARY KEY REFERENCES topics (id), bytes INTEGER NOT NULL);
`;

/**
 * The indexes grow at their ends only (a write's blocks start about when it was made), so a write
 * changes their last pages, not a page per topic: the topic and the other end are read from the
 * index. meta's `block_span` is the longest time a block spans (ms): a query from a time seeks to
 * the blocks starting at most that much before it, instead of walking every earlier one.
 */
const BLOCK_TABLE = `
  CREATE TABLE IF NOT EXISTS block (
    id INTEGER PRIMARY KEY,
    topic_id INTEGER NOT NULL REFERENCES topics (id),
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    -- received_at of the block's first and last readings (it holds them in that order)
    first_at INTEGER NOT NULL,
    last_at INTEGER NOT NULL,
    count INTEGER NOT NULL,
    payload_bytes INTEGER NOT NULL,
    -- bytes of the rows' text; data is that text deflated (zlib), or the text itself when not smaller
    size INTEGER NOT NULL,
    data BLOB NOT NULL
  );
  CREATE INDEX IF NOT EXISTS block_first ON block (first_at, topic_id, last_at);
  CREATE INDEX IF NOT EXISTS block_last ON block (last_at, topic_id, first_at);
  CREATE INDEX IF NOT EXISTS block_seq ON block (last_seq);
`;

/** What a store of each older layout holds in each of a reading's columns. */
const OLD_COLUMNS: Record<number, string> = {
  0: 'seq, topic_id, received_at, device_time, clock_synced, client_ref, schema_id, qos, encoding, CASE WHEN encoding IS NULL THEN json(payload) ELSE payload END AS payload, NULL AS clock_correction_ms',
  1: 'seq, topic_id, received_at, device_time, clock_synced, client_ref, schema_id, qos, encoding, payload, NULL AS clock_correction_ms',
  2: 'seq, topic_id, received_at, device_time, clock_synced, client_ref, schema_id, qos, encoding, payload, clock_correction_ms',
};

interface OldRow {
  seq: number;
  topic_id: number;
  received_at: number;
  device_time: number | null;
  clock_synced: number;
  client_ref: number;
  schema_id: number | null;
  qos: number;
  encoding: string | null;
  payload: string;
  clock_correction_ms: number | null;
}

/** Create the tables, or bring a store of an older layout (a row per reading) to blocks, in one transaction. */
function migrate(db: Database.Database, addBlocks: (topic: number, entries: BlockEntry[]) => void): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > LAYOUT_VERSION)
    throw new Error(`store layout ${version} is newer than this agent's (${LAYOUT_VERSION}); upgrade the agent`);
  const rows = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'reading'").get();
  db.transaction(() => {
    db.exec(BLOCK_TABLE);
    if (rows && version < LAYOUT_VERSION) {
      const page = db.prepare(`SELECT ${OLD_COLUMNS[version]} FROM reading WHERE seq > ? ORDER BY seq LIMIT 10000`);
      for (let after = 0, got: OldRow[]; (got = page.all(after) as OldRow[]).length; after = got[got.length - 1].seq) {
        for (const [topic, entries] of byTopic(got.map(oldEntry))) addBlocks(topic, entries);
      }
      db.exec('DROP VIEW IF EXISTS readings; DROP TABLE reading;');
    }
    db.exec(READINGS_VIEW);
    db.pragma(`user_version = ${LAYOUT_VERSION}`);
  })();
}

const oldEntry = (r: OldRow): BlockEntry & { topic: number } => ({
  topic: r.topic_id,
  seq: r.seq,
  at: r.received_at,
  deviceTime: r.device_time,
  clockSynced: r.clock_synced === 1,
  clockCorrectionMs: r.clock_correction_ms,
  client: r.client_ref,
  schema: r.schema_id,
  qos: r.qos,
  encoding: r.encoding,
  payload: r.payload,
});

/** Entries grouped by topic, in the order given. */
function byTopic(entries: (BlockEntry & { topic: number })[]): Map<number, BlockEntry[]> {
  const groups = new Map<number, BlockEntry[]>();
  for (const e of entries) {
    const group = groups.get(e.topic);
    if (group) group.push(e);
    else groups.set(e.topic, [e]);
  }
  return groups;
}

/** name <-> id for one of the small name tables, cached. */
class Names {
  private readonly ids = new Map<string, number>();
  private readonly names = new Map<number, string>();
  private readonly find: Database.Statement;
  private readonly findName: Database.Statement;
  private readonly add: Database.Statement;

  constructor(db: Database.Database, table: string) {
    this.find = db.prepare(`SELECT id FROM ${table} WHERE name = ?`);
    this.findName = db.prepare(`SELECT name FROM ${table} WHERE id = ?`);
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

  name(id: number): string {
    let name = this.names.get(id);
    if (name === undefined) {
      name = (this.findName.get(id) as { name: string } | undefined)?.name ?? '';
      this.names.set(id, name);
    }
    return name;
  }

  known(name: string): number | undefined {
    return this.ids.get(name) ?? (this.find.get(name) as { id: number } | undefined)?.id;
  }

  /** After a rollback: ids given out in it no longer exist. */
  forget(): void {
    this.ids.clear();
    this.names.clear();
  }
}

/** What a query asks of each reading, beyond the blocks it picked: their time, seq and position. */
function entryFilter(q: StoreQuery): (e: BlockEntry) => boolean {
  const { from = -Infinity, to = Infinity, afterSeq = -Infinity, exceptSeqs, after } = q;
  const desc = q.order === 'desc';
  return (e) =>
    e.at >= from &&
    e.at <= to &&
    e.seq > afterSeq &&
    !(exceptSeqs && e.seq > exceptSeqs.after && e.seq <= exceptSeqs.through) &&
    !(after && (desc ? inOrder(e, after) >= 0 : inOrder(e, after) <= 0));
}

/** The function the `readings` view unpacks blocks with, for a connection of anyone's (the sqlite3 shell has its own). */
export function defineSqlarUncompress(db: Database.Database): void {
  db.function('sqlar_uncompress', { deterministic: true }, (data, size) => uncompress(data as Buffer, Number(size)));
}

export class SqliteDb {
  private readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();
  private readonly insertLines: (agentId: string, lines: string[], clock?: ClockOffsets) => void;
  private readonly topics: Names;
  private readonly clients: Names;
  private readonly schemas: Names;
  /** Highest seq stored: a batch given again after a crash (the cursor had not moved) is skipped up to it. */
  private last = 0;
  private agentId: string | undefined;

  /** `readonly`: for a reader beside the agent (`edge-agent export`): it changes nothing, not even the layout. */
  constructor(path: string, key?: Buffer, readonly = false) {
    this.db = openKeyed(path, key, readonly);
    defineSqlarUncompress(this.db);
    if (readonly) this.db.pragma('busy_timeout = 5000');
    else this.setUp();
    this.topics = new Names(this.db, 'topics');
    this.clients = new Names(this.db, 'clients');
    this.schemas = new Names(this.db, 'schemas');
    this.last = this.lastSeq();
    const setAgent = this.db.prepare(
      "INSERT INTO meta (key, value) VALUES ('agent_id', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    );
    const grow = this.db.prepare(
      'INSERT INTO topic_size VALUES (?, ?) ON CONFLICT (topic_id) DO UPDATE SET bytes = bytes + excluded.bytes',
    );
    // What json_extract cannot read (nested past 1,000, say) is refused here, not found broken later
    // in the `readings` view; the code is the one a CHECK constraint gives, a fault of the reading.
    const readable = this.db.prepare('SELECT json_valid(?)').pluck();
    const refuse = (seq: number) =>
      Object.assign(new Error(`reading ${seq}: SQLite cannot read its payload as JSON`), { code: 'SQLITE_CONSTRAINT_CHECK' });
    const insertLines = this.db.transaction((agentId: string, lines: string[], clock: ClockOffsets | undefined) => {
      if (this.agentId !== agentId) setAgent.run(agentId);
      this.agentId = agentId;
      const entries: (BlockEntry & { topic: number })[] = [];
      let stored: Set<number> | undefined;
      for (const line of lines) {
        const { head: h, payloadJson } = splitRecord(line, clock);
        if (h.seq <= this.last && (stored ??= this.storedSeqs(h.seq, this.last)).has(h.seq)) continue;
        if (!h.encoding && !readable.get(payloadJson)) throw refuse(h.seq);
        entries.push({
          topic: this.topics.id(h.topic),
          seq: h.seq,
          at: h.receivedAt,
          deviceTime: h.deviceTime ?? null,
          clockSynced: h.clockSynced,
          clockCorrectionMs: h.clockCorrectionMs ?? null,
          client: this.clients.id(h.clientId),
          schema: h.schema === undefined ? null : this.schemas.id(h.schema),
          qos: h.qos,
          encoding: h.encoding ?? null,
          payload: h.encoding ? (JSON.parse(payloadJson) as string) : payloadJson,
        });
      }
      for (const [topic, group] of byTopic(entries)) grow.run(topic, this.addBlocks(topic, group));
      return entries.reduce((max, e) => Math.max(max, e.seq), this.last);
    });
    // A failed transaction is rolled back, and so must be what this side cached during it.
    this.insertLines = (agentId, lines, clock) => {
      try {
        this.last = insertLines(agentId, lines, clock);
      } catch (err) {
        this.agentId = undefined;
        for (const names of [this.topics, this.clients, this.schemas]) names.forget();
        throw err;
      }
    };
  }

  private setUp(): void {
    // A rollback journal, not WAL: blocks are appended at the end of the table, and only the few
    // pages a write changes in place (the tables' and indexes' last ones) are journalled, where WAL
    // writes every page twice (to the WAL, then at checkpoint). The cost: a reader (sqlite3) holds
    // the next write back while its query runs (the agent's own run in slices: sqlite.ts); the write
    // waits up to busy_timeout, then is retried, and the log keeps the readings meanwhile.
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
    migrate(this.db, (topic, entries) => this.addBlocks(topic, entries));
    if (!this.db.prepare('SELECT 1 FROM topic_size LIMIT 1').get()) {
      this.db.exec('INSERT INTO topic_size SELECT topic_id, sum(payload_bytes) FROM block GROUP BY topic_id'); // a store from before sizes were kept
    }
  }

  /**
   * The seqs in [from, through] the store holds. Only for a batch given again (its first seq at or
   * below the highest stored, `through`: none past it is stored): two writes are in flight at once,
   * so a later batch may be stored before an earlier one that failed is given again, and its readings
   * must then be stored, not skipped.
   */
  private storedSeqs(from: number, through: number): Set<number> {
    const seqs = new Set<number>();
    const blocks = this.statement('SELECT first_seq, first_at, size, data FROM block WHERE last_seq >= ? AND first_seq <= ?').all(
      from,
      through,
    ) as Omit<BlockRow, 'id' | 'topic_id' | 'last_at'>[];
    for (const b of blocks)
      for (const e of decodeBlock({ firstSeq: b.first_seq, firstAt: b.first_at, size: b.size, data: b.data })) seqs.add(e.seq);
    return seqs;
  }

  /** A topic's entries as blocks of up to BLOCK_READINGS; their payload bytes. */
  private addBlocks(topic: number, entries: BlockEntry[]): number {
    let bytes = 0;
    for (let i = 0; i < entries.length; i += BLOCK_READINGS) {
      const b = encodeBlock(entries.slice(i, i + BLOCK_READINGS));
      this.statement(
        'INSERT INTO block (topic_id, first_seq, last_seq, first_at, last_at, count, payload_bytes, size, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ).run(topic, b.firstSeq, b.lastSeq, b.firstAt, b.lastAt, b.count, b.payloadBytes, b.size, b.data);
      if (b.lastAt - b.firstAt > this.blockSpan())
        this.statement("INSERT OR REPLACE INTO meta (key, value) VALUES ('block_span', ?)").run(String(b.lastAt - b.firstAt));
      bytes += b.payloadBytes;
    }
    return bytes;
  }

  /** The longest time a block spans, ms (read each time: a reader beside the agent sees its writes). */
  private blockSpan(): number {
    return Number(this.statement("SELECT value FROM meta WHERE key = 'block_span'").pluck().get() ?? 0);
  }

  /** A statement of fixed text, prepared once. */
  private statement(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (!s) this.statements.set(sql, (s = this.db.prepare(sql)));
    return s;
  }

  lastSeq(): number {
    if (!this.hasBlocks()) return 0;
    return (this.statement('SELECT max(last_seq) AS seq FROM block').get() as { seq: number | null }).seq ?? 0;
  }

  /** A reader may open a store the agent has not yet brought to this layout. */
  private hasBlocks(): boolean {
    return this.statement("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'block'").get() !== undefined;
  }

  write(agentId: string, lines: string[], clock?: ClockOffsets): void {
    this.insertLines(agentId, lines, clock);
  }

  /** Readings in time order (either way) on the query's topics; the caller applies field conditions and the limit. */
  *query(q: StoreQuery, matches?: (topic: string) => boolean): Generator<LogRecord> {
    if (!this.hasBlocks()) throw new Error('the store has an older layout: start the agent once (it converts the store), then read it');
    const where: string[] = [];
    const args: Record<string, unknown> = {};
    const add = (clause: string, key: string, value: unknown) => {
      where.push(clause);
      args[key] = value;
    };
    if (q.topic !== undefined && !/[+#]/.test(q.topic)) add('topic_id = @topic', 'topic', this.topics.known(q.topic) ?? -1);
    else if (q.topic !== undefined && matches) {
      const ids = this.topicIds(matches);
      if (ids.length < this.topicCount()) where.push(`topic_id IN (${ids.join(',')})`);
    }
    if (q.from !== undefined) add('last_at >= @from', 'from', q.from);
    if (q.to !== undefined) add('first_at <= @to', 'to', q.to);
    if (q.afterSeq !== undefined) add('last_seq > @afterSeq', 'afterSeq', q.afterSeq);
    if (q.exceptSeqs) {
      where.push('NOT (first_seq > @exceptAfter AND last_seq <= @exceptThrough)');
      args.exceptAfter = q.exceptSeqs.after;
      args.exceptThrough = q.exceptSeqs.through;
    }
    const desc = q.order === 'desc';
    if (q.after) add(desc ? 'first_at <= @afterAt' : 'last_at >= @afterAt', 'afterAt', q.after.at);
    // Where the index walk can start: no block holding a reading past the bound starts (ends) further off than the longest span.
    const bound = desc ? Math.min(q.to ?? Infinity, q.after?.at ?? Infinity) : Math.max(q.from ?? -Infinity, q.after?.at ?? -Infinity);
    if (Number.isFinite(bound)) add(desc ? 'last_at <= @edge' : 'first_at >= @edge', 'edge', bound + (desc ? 1 : -1) * this.blockSpan());
    // The time index gives the order; the topic, its second key, is checked there.
    const order = desc ? 'ORDER BY last_at DESC, id DESC' : 'ORDER BY first_at, id';
    const blocks = this.db
      .prepare(
        `SELECT id, topic_id, first_seq, first_at, last_at, size, data FROM block ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ${order}`,
      )
      .iterate(args) as IterableIterator<BlockRow>;
    const keep = entryFilter(q);
    function* refs(): Generator<BlockRef<BlockEntry & { topic: number }>> {
      for (const b of blocks)
        yield {
          firstAt: b.first_at,
          lastAt: b.last_at,
          open: () => {
            const kept: (BlockEntry & { topic: number })[] = [];
            for (const e of decodeBlock({ firstSeq: b.first_seq, firstAt: b.first_at, size: b.size, data: b.data }, b.topic_id))
              if (keep(e)) kept.push(e);
            return kept;
          },
        };
    }
    for (const e of mergeBlocks(refs(), desc)) yield this.toRecord(e);
  }

  private toRecord(e: BlockEntry & { topic: number }): LogRecord {
    return {
      seq: e.seq,
      agentId: this.agentId ?? this.storedAgentId(),
      topic: this.topics.name(e.topic),
      receivedAt: e.at,
      clockSynced: e.clockSynced,
      ...(e.clockCorrectionMs !== null ? { clockCorrectionMs: e.clockCorrectionMs } : {}),
      ...(e.deviceTime !== null ? { deviceTime: e.deviceTime } : {}),
      payload: e.encoding ? e.payload : JSON.parse(e.payload),
      ...(e.encoding ? { encoding: e.encoding as 'base64' } : {}),
      clientId: this.clients.name(e.client),
      ...(e.schema !== null ? { schema: this.schemas.name(e.schema) } : {}),
      qos: e.qos as 0 | 1 | 2,
    };
  }

  private storedAgentId(): string {
    this.agentId = (this.db.prepare("SELECT value FROM meta WHERE key = 'agent_id'").get() as { value: string } | undefined)?.value;
    return this.agentId ?? '';
  }

  /** One step of a removal on request: up to about `limit` readings of the topics received in [from, to]. */
  removeStep(topicIds: number[], from: number, to: number, limit: number): { deleted: number; done: boolean } {
    if (!topicIds.length) return { deleted: 0, done: true };
    const deleted = this.db.transaction(() =>
      this.deleteFrom(
        `topic_id IN (${topicIds.join(',')}) AND last_at >= ? AND first_at <= ?`,
        [from, to],
        (e) => e.at >= from && e.at <= to,
        limit,
      ),
    )();
    const free = this.giveBack();
    return { deleted, done: deleted < limit && free <= VACUUM_PAGES };
  }

  /**
   * One step of pruning: about `limit` readings of the topics received before `before` (and with seq
   * up to `throughSeq`), oldest first; then the pages they freed are given back to the filesystem.
   */
  pruneStep(topicIds: number[], before: number, throughSeq: number, limit: number): { deleted: number; done: boolean } {
    let deleted = 0;
    if (topicIds.length) {
      // One transaction: the readings and their bytes in topic_size go together.
      deleted = this.db.transaction(() =>
        this.deleteFrom(
          `topic_id IN (${topicIds.join(',')}) AND first_at < ? AND first_seq <= ?`,
          [before, throughSeq],
          (e) => e.at < before && e.seq <= throughSeq,
          limit,
        ),
      )();
    }
    const free = this.giveBack();
    return { deleted, done: deleted === 0 && free <= VACUUM_PAGES };
  }

  /**
   * Give up to VACUUM_PAGES free pages back to the filesystem; the free pages there were. It journals
   * what it moves, so on a full disk it can fail: the deletion before it is committed, and counted,
   * all the same, and the pages go back at a later run (0: a caller does not step again for them now,
   * which on a full disk would turn without progress).
   */
  private giveBack(): number {
    const free = this.db.pragma('freelist_count', { simple: true }) as number;
    try {
      if (free > 0) this.db.pragma(`incremental_vacuum(${VACUUM_PAGES})`);
      return free;
    } catch {
      return 0;
    }
  }

  /**
   * Delete the readings `gone` picks from the blocks meeting the condition, oldest blocks first,
   * until `limit` or more are gone; a block left with some is written again with those. Their bytes
   * leave topic_size.
   */
  private deleteFrom(condition: string, args: number[], gone: (e: BlockEntry) => boolean, limit: number): number {
    // Their places first, their rows one at a time: a step may cover many blocks, and a write cannot wait for a read to end.
    const blocks = this.db
      .prepare(`SELECT id, topic_id, first_seq, first_at, payload_bytes, size FROM block WHERE ${condition} ORDER BY first_seq`)
      .all(...args) as (Omit<BlockRow, 'data'> & { payload_bytes: number })[];
    const read = this.db.prepare('SELECT data FROM block WHERE id = ?').pluck();
    const drop = this.db.prepare('DELETE FROM block WHERE id = ?');
    const shrink = this.db.prepare('UPDATE topic_size SET bytes = max(0, bytes - ?) WHERE topic_id = ?');
    let deleted = 0;
    for (const b of blocks) {
      if (deleted >= limit) break;
      const entries = decodeBlock({ firstSeq: b.first_seq, firstAt: b.first_at, size: b.size, data: read.get(b.id) as Buffer });
      const kept = entries.filter((e) => !gone(e));
      if (kept.length === entries.length) continue;
      drop.run(b.id);
      const keptBytes = kept.length ? this.addBlocks(b.topic_id, kept) : 0;
      shrink.run(b.payload_bytes - keptBytes, b.topic_id);
      deleted += entries.length - kept.length;
    }
    return deleted;
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
