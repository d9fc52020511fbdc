// A SQLite store holding many readings, written directly (as the store's worker writes them), for
// tests and benchmarks of reading them back.
import { encodeRecord } from '../../agent/log/index.js';
import { SqliteDb } from '../../agent/consume/store/sqlite-db.js';

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
