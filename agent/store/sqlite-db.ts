// The SQLite store itself. It runs in a worker thread (see sqlite.ts): its inserts and fsyncs
// must not hold up the event loop that acknowledges readings.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { LogRecord } from '../buffer/record.js';

export interface SqliteQuery {
  topic?: string;
  from?: number;
  to?: number;
  afterSeq?: number;
}

interface Row {
  seq: number;
  agent_id: string;
  topic: string;
  received_at: number;
  device_time: number | null;
  clock_synced: number;
  client_id: string;
  schema: string | null;
  qos: number;
  encoding: string | null;
  payload: string;
}

interface Header {
  seq: number;
  topic: string;
  receivedAt: number;
  clockSynced: boolean;
  deviceTime?: number;
  encoding?: string;
  clientId: string;
  schema?: string;
  qos: number;
}

export class SqliteDb {
  private readonly db: Database.Database;
  private readonly insert: Database.Statement;
  private readonly insertLines: (agentId: string, lines: string[]) => void;

  constructor(path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    // FULL: a stored batch survives power loss before the log cursor moves past it.
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS readings (
        seq INTEGER PRIMARY KEY,
        agent_id TEXT NOT NULL,
        topic TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        device_time INTEGER,
        clock_synced INTEGER NOT NULL,
        client_id TEXT NOT NULL,
        schema TEXT,
        qos INTEGER NOT NULL,
        encoding TEXT,
        payload TEXT NOT NULL
      );
      CREATE INDEX IF NOT EXISTS readings_topic_time ON readings (topic, received_at);
    `);
    this.insert = this.db.prepare('INSERT OR IGNORE INTO readings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)');
    this.insertLines = this.db.transaction((agentId: string, lines: string[]) => {
      for (const line of lines) {
        // The log writes the payload last: parse the small header, keep the payload text as it is.
        const cut = line.indexOf(',"payload":');
        const h = JSON.parse(`${line.slice(0, cut)}}`) as Header;
        const payload = line.slice(cut + 11, -1);
        this.insert.run(h.seq, agentId, h.topic, h.receivedAt, h.deviceTime ?? null, h.clockSynced ? 1 : 0, h.clientId, h.schema ?? null, h.qos, h.encoding ?? null, h.encoding ? JSON.parse(payload) : payload);
      }
    });
  }

  lastSeq(): number {
    return (this.db.prepare('SELECT max(seq) AS seq FROM readings').get() as { seq: number | null }).seq ?? 0;
  }

  write(agentId: string, lines: string[]): void {
    this.insertLines(agentId, lines);
  }

  /** Readings in seq order; the caller filters topic patterns and stops at its limit. */
  *query(q: SqliteQuery): Generator<LogRecord> {
    const where: string[] = [];
    const args: Record<string, unknown> = {};
    const add = (clause: string, key: string, value: unknown) => {
      where.push(clause);
      args[key] = value;
    };
    if (q.topic !== undefined && !/[+#]/.test(q.topic)) add('topic = @topic', 'topic', q.topic);
    if (q.from !== undefined) add('received_at >= @from', 'from', q.from);
    if (q.to !== undefined) add('received_at <= @to', 'to', q.to);
    if (q.afterSeq !== undefined) add('seq > @afterSeq', 'afterSeq', q.afterSeq);
    const sql = `SELECT * FROM readings ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq`;
    for (const row of this.db.prepare(sql).iterate(args) as IterableIterator<Row>) yield toRecord(row);
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
    ...(row.device_time !== null ? { deviceTime: row.device_time } : {}),
    payload: row.encoding ? row.payload : JSON.parse(row.payload),
    ...(row.encoding ? { encoding: row.encoding as 'base64' } : {}),
    clientId: row.client_id,
    ...(row.schema !== null ? { schema: row.schema } : {}),
    qos: row.qos as 0 | 1 | 2,
  };
}
