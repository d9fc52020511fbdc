// A SQLite store holding many readings, written directly (as the store's worker writes them), for
// tests and benchmarks of reading them back.
import { encodeRecord } from '../../agent/log/index.js';
import Database from 'better-sqlite3-multiple-ciphers';
import { defineSqlarUncompress, SqliteDb } from '../../agent/consume/store/sqlite-db.js';

/** `count` readings on `topics` topics, 1 ms apart ending now; seqs 1..count. */
export function seedSqliteStore(path: string, count: number, topics = 8): void {
  const db = new SqliteDb(path);
  const start = Date.now() - count;
  try {
    for (let first = 1; first <= count; first += 10_000) {
      const lines: string[] = [];
      for (let seq = first; seq < Math.min(first + 10_000, count + 1); seq++) {
        const payload = JSON.stringify({
          temperature: 20 + (seq % 100) / 10,
          humidity: 40 + (seq % 30),
          battery: 3.7,
          status: seq % 7 ? 'ok' : 'low',
        });
        lines.push(
          encodeRecord(seq, {
            topic: `site/${seq % topics}/sensor`,
            receivedAt: start + seq,
            clockSynced: true,
            payloadJson: payload,
            clientId: `sensor-${seq % topics}`,
            qos: 1,
          }),
        );
      }
      db.write('seed-agent', lines);
    }
  } finally {
    db.close();
  }
}

/**
 * The store's readings at `plain` as a plain SQLite database holds them: a row each, seq the key, an
 * index on time. What a baseline of sqlite3's own command line reads (the store's blocks are not an
 * index sqlite3 can walk: its `readings` view unpacks them all).
 */
export function plainCopy(store: string, plain: string): void {
  const db = new Database(plain);
  try {
    defineSqlarUncompress(db);
    db.exec(`ATTACH '${store.replaceAll("'", "''")}' AS store;
      CREATE TABLE readings (seq INTEGER PRIMARY KEY, agent_id TEXT, topic TEXT, received_at INTEGER, device_time INTEGER,
        clock_synced INTEGER, client_id TEXT, schema TEXT, qos INTEGER, encoding TEXT, payload TEXT, clock_correction_ms INTEGER);
      INSERT INTO readings SELECT * FROM store.readings ORDER BY seq;
      CREATE INDEX readings_time ON readings (received_at);`);
  } finally {
    db.close();
  }
}
