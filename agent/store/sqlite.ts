// SQLite store: WAL, one transaction per batch (synchronous=FULL, so a stored batch survives power
// loss before the log cursor moves past it), an index for topic + time, payload as queryable JSON.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { topicMatches } from '../../embedded-broker/index.js';
import type { LogRecord } from '../buffer/record.js';
import type { LocalStore, StoreQuery } from './types.js';

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

export function openSqliteStore(path: string): LocalStore {
  mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec(`
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
      payload TEXT NOT NULL CHECK (encoding IS NOT NULL OR json_valid(payload))
    );
    CREATE INDEX IF NOT EXISTS readings_topic_time ON readings (topic, received_at);
  `);
  const insert = db.prepare(
    `INSERT OR IGNORE INTO readings (seq, agent_id, topic, received_at, device_time, clock_synced, client_id, schema, qos, encoding, payload)
     VALUES (@seq, @agentId, @topic, @receivedAt, @deviceTime, @clockSynced, @clientId, @schema, @qos, @encoding, @payload)`,
  );
  const insertAll = db.transaction((records: LogRecord[]) => {
    for (const r of records) {
      insert.run({
        seq: r.seq,
        agentId: r.agentId,
        topic: r.topic,
        receivedAt: r.receivedAt,
        deviceTime: r.deviceTime ?? null,
        clockSynced: r.clockSynced ? 1 : 0,
        clientId: r.clientId,
        schema: r.schema ?? null,
        qos: r.qos,
        encoding: r.encoding ?? null,
        payload: r.encoding ? (r.payload as string) : JSON.stringify(r.payload),
      });
    }
  });
  let last = (db.prepare('SELECT max(seq) AS seq FROM readings').get() as { seq: number | null }).seq ?? 0;

  return {
    kind: 'sqlite',
    async write(records) {
      const fresh = records.filter((r) => r.seq > last);
      if (fresh.length === 0) return;
      insertAll(fresh);
      last = fresh[fresh.length - 1].seq;
    },
    async query(q: StoreQuery) {
      const where: string[] = [];
      const args: Record<string, unknown> = {};
      const exact = q.topic !== undefined && !/[+#]/.test(q.topic);
      if (exact) (where.push('topic = @topic'), (args.topic = q.topic));
      if (q.from !== undefined) (where.push('received_at >= @from'), (args.from = q.from));
      if (q.to !== undefined) (where.push('received_at <= @to'), (args.to = q.to));
      if (q.afterSeq !== undefined) (where.push('seq > @afterSeq'), (args.afterSeq = q.afterSeq));
      const limit = q.limit ?? 1000;
      const sql = `SELECT * FROM readings ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq`;
      const out: LogRecord[] = [];
      for (const row of db.prepare(sql).iterate(args) as IterableIterator<Row>) {
        if (q.topic !== undefined && !exact && !topicMatches(q.topic, row.topic)) continue;
        out.push(toRecord(row));
        if (out.length >= limit) break;
      }
      return out;
    },
    lastSeq: () => last,
    async close() {
      db.close();
    },
  };
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
