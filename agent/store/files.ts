// Filesystem store: JSON Lines, one file per topic and hour (UTC, by receive time), gzip-compressed
// once the hour has closed. Exactly once: the highest stored seq is recovered from the files
// themselves, and a torn last line is cut off at start-up.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, truncateSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { topicMatches } from '../../embedded-broker/index.js';
import type { LogRecord } from '../buffer/record.js';
import type { LocalStore, StoreQuery } from './types.js';

const HOUR = 3_600_000;
/** An hour's file is closed (compressed) this long after the hour ends, to let late readings in. */
const CLOSE_GRACE_MS = 5 * 60_000;

const hourOf = (ms: number) => Math.floor(ms / HOUR) * HOUR;
const hourName = (hour: number) => new Date(hour).toISOString().slice(0, 13); // 2026-11-30T14

export interface FilesStoreOptions {
  dir: string;
  now?: () => number;
}

export function openFilesStore(opts: FilesStoreOptions): LocalStore & { closeHours(): void } {
  const { dir } = opts;
  const now = opts.now ?? Date.now;
  mkdirSync(dir, { recursive: true });
  const statePath = join(dir, '.state.json');
  const topicDir = (topic: string) => join(dir, encodeURIComponent(topic));
  const fileOf = (topic: string, hour: number) => join(topicDir(topic), `${hourName(hour)}.jsonl`);

  let last = recover();

  /** The highest seq stored: the state file, or a line written after it (crash before the state update). */
  function recover(): number {
    let seq = existsSync(statePath) ? (JSON.parse(readFileSync(statePath, 'utf8')) as { lastSeq: number }).lastSeq : 0;
    for (const file of openFiles()) seq = Math.max(seq, repairTail(file));
    return seq;
  }

  function openFiles(): string[] {
    return readdirSync(dir, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .flatMap((d) => readdirSync(join(dir, d.name)).filter((f) => f.endsWith('.jsonl')).map((f) => join(dir, d.name, f)));
  }

  /** Cut a torn last line; return the seq of the last whole line. */
  function repairTail(file: string): number {
    const text = readFileSync(file, 'utf8');
    const end = text.lastIndexOf('\n') + 1;
    if (end < text.length) truncateSync(file, Buffer.byteLength(text.slice(0, end)));
    const lines = text.slice(0, end).trimEnd().split('\n');
    const lastLine = lines[lines.length - 1];
    return lastLine ? (JSON.parse(lastLine) as LogRecord).seq : 0;
  }

  /** Compress every hour file whose hour ended more than the grace period ago. */
  function closeHours(): void {
    const cutoff = hourOf(now() - CLOSE_GRACE_MS);
    for (const file of openFiles()) {
      const hour = Date.parse(`${file.slice(-19, -6)}:00:00Z`);
      if (hour >= cutoff) continue;
      const gz = file.replace(/\.jsonl$/, '.jsonl.gz');
      const tmp = `${gz}.tmp`;
      const previous = existsSync(gz) ? readFileSync(gz) : Buffer.alloc(0);
      // gzip members concatenate: a late batch for a closed hour becomes one more member.
      writeFileSync(tmp, Buffer.concat([previous, gzipSync(readFileSync(file))]));
      const fd = openSync(tmp, 'r');
      fsyncSync(fd);
      closeSync(fd);
      renameSync(tmp, gz);
      unlinkSync(file);
    }
  }

  const timer = setInterval(closeHours, 60_000);
  timer.unref();
  closeHours();

  return {
    kind: 'files',
    closeHours,
    async write(batch) {
      if (batch.lastSeq <= last) return;
      const fresh = batch.decode().records().filter((r) => r.seq > last);
      if (fresh.length === 0) return;
      const byFile = new Map<string, string[]>();
      for (const r of fresh) {
        const file = fileOf(r.topic, hourOf(r.receivedAt));
        let lines = byFile.get(file);
        if (!lines) byFile.set(file, (lines = []));
        lines.push(JSON.stringify(r));
      }
      for (const [file, lines] of byFile) {
        mkdirSync(join(file, '..'), { recursive: true });
        const fd = openSync(file, 'a');
        try {
          writeSync(fd, `${lines.join('\n')}\n`);
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
      }
      last = fresh[fresh.length - 1].seq;
      writeFileSync(`${statePath}.tmp`, JSON.stringify({ lastSeq: last }));
      renameSync(`${statePath}.tmp`, statePath);
    },
    async query(q: StoreQuery) {
      const out: LogRecord[] = [];
      const from = q.from ?? 0;
      const to = q.to ?? Number.MAX_SAFE_INTEGER;
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        if (!entry.isDirectory()) continue;
        const topic = decodeURIComponent(entry.name);
        if (q.topic !== undefined && !topicMatches(q.topic, topic)) continue;
        for (const name of readdirSync(join(dir, entry.name))) {
          if (!name.endsWith('.jsonl') && !name.endsWith('.jsonl.gz')) continue;
          const hour = Date.parse(`${name.slice(0, 13)}:00:00Z`);
          if (hour + HOUR <= from || hour > to) continue;
          const path = join(dir, entry.name, name);
          const raw = readFileSync(path);
          const text = name.endsWith('.gz') ? gunzipSync(raw).toString() : raw.toString();
          for (const line of text.split('\n')) {
            if (!line) continue;
            const r = JSON.parse(line) as LogRecord;
            if (r.receivedAt >= from && r.receivedAt <= to && r.seq > (q.afterSeq ?? 0)) out.push(r);
          }
        }
      }
      out.sort((a, b) => a.seq - b.seq);
      return out.slice(0, q.limit ?? 1000);
    },
    lastSeq: () => last,
    async close() {
      clearInterval(timer);
    },
  };
}

