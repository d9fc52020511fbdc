// Filesystem store: JSON Lines, one folder per topic and one file per hour (UTC, by receive time),
// gzip-compressed once the hour has closed. Exactly once: a write that fails is cut back to the
// file's last whole line, and each file knows the last seq it holds, so a batch written again
// (after a failure, or a crash before the state file moved) adds nothing twice.
import { open, seal, type LogRecord, type ChunkBatch } from '../../log/format.js';
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { coveredBy, topicMatches } from '../../../mqtt-topic/topic.js';
import { RecordFault } from '../../lib/faults.js';
import { matchesWhere, pastPosition, timeOrder } from './where.js';
import { writtenBytes } from '../../lib/disk-writes.js';
import { foldPages } from './fold.js';
import type { FoldQuery, FoldResult, LocalStore, PruneRule, PruneStep, Removal, StoreQuery, TopicCover } from './types.js';

const HOUR = 3_600_000;
/** An hour's file is closed (compressed) this long after the hour ends, to let late readings in. */
const CLOSE_GRACE_MS = 5 * 60_000;

const hourOf = (ms: number) => Math.floor(ms / HOUR) * HOUR;
const hourName = (hour: number) => new Date(hour).toISOString().slice(0, 13); // 2026-11-30T14

/** Longest folder name written (ext4 allows 255 bytes); longer ones are cut and given a hash. */
const MAX_NAME = 200;
/** Where a shortened name keeps its topic. */
const TOPIC_FILE = '.topic';

/**
 * A topic's folder name: one path segment, one topic each. encodeURIComponent turns `/`, NUL and
 * `%` into escapes; a leading `.` is escaped too (no `.`, `..` or hidden names), an escape it never
 * writes. A name too long is cut and ends in `#` and a hash of the topic (a `#` it never writes either).
 */
export function topicFolder(topic: string): string {
  const name = encodeURIComponent(topic).replace(/^\./, '%2E');
  if (name.length <= MAX_NAME) return name;
  const cut = name.slice(0, MAX_NAME - 34).replace(/%[0-9A-F]?$/, '');
  return `${cut}#${createHash('sha256').update(topic).digest('hex').slice(0, 32)}`;
}

export interface FilesStoreOptions {
  dir: string;
  now?: () => number;
  /** Encryption at rest: each line is the record sealed (AES-256-GCM), in base64. */
  key?: Buffer;
}

/** One line of a file: the record as JSON, or sealed with the key. */
function lineCodec(key: Buffer | undefined) {
  const aad = Buffer.from('edge-agent files store');
  return {
    encode: (r: LogRecord) => (key ? seal(Buffer.from(JSON.stringify(r)), key, aad).toString('base64') : JSON.stringify(r)),
    // A line written before encryption was configured is plain JSON (base64 never starts with `{`).
    decode: (line: string) =>
      JSON.parse(key && !line.startsWith('{') ? open(Buffer.from(line, 'base64'), key, aad).toString() : line) as LogRecord,
  };
}

/** An hour file's lines, closed (gzip) or open. */
function readHourFile(path: string): string {
  const raw = readFileSync(path);
  return path.endsWith('.gz') ? gunzipSync(raw).toString() : raw.toString();
}

/** Errors that say a name cannot be held here (not the disk or the moment). */
const NAME_FAULTS = new Set(['ENAMETOOLONG', 'EILSEQ']);

/** Lines that are the records of a file, whole or in part. */
type Line = ReturnType<typeof lineCodec>;

export class FilesStore implements LocalStore {
  readonly kind = 'files';
  private readonly dir: string;
  private readonly now: () => number;
  private readonly line: Line;
  private readonly statePath: string;
  /** Bytes its writes caused (measured on the thread that runs them); undefined where /proc does not say. */
  private written: number | undefined = 0;
  /** Last seq each open hour file holds, read from its tail the first time it is written. */
  private readonly fileLast = new Map<string, number>();
  /** Every reading up to this seq is in the files (the state file); later ones may be, in part. */
  private whole: number;
  /** Highest seq in any file. */
  private last: number;
  /** A batch is written in part: files must not be compressed away until it is whole (they tell what is there). */
  private partial: boolean;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly opts: FilesStoreOptions) {
    this.dir = opts.dir;
    this.now = opts.now ?? Date.now;
    this.line = lineCodec(opts.key);
    mkdirSync(this.dir, { recursive: true });
    this.statePath = join(this.dir, '.state.json');
    this.whole = existsSync(this.statePath) ? (JSON.parse(readFileSync(this.statePath, 'utf8')) as { lastSeq: number }).lastSeq : 0;
    this.last = this.whole;
    for (const file of this.openFiles()) this.last = Math.max(this.last, this.repairTail(file));
    this.partial = this.last > this.whole;
    this.timer = setInterval(() => this.closeHours(), 60_000);
    this.timer.unref();
    this.closeHours();
  }

  async write(batch: ChunkBatch): Promise<void> {
    const before = writtenBytes('thread');
    try {
      this.writeBatch(batch);
    } finally {
      const after = writtenBytes('thread');
      this.written = before === undefined || after === undefined || this.written === undefined ? undefined : this.written + after - before;
    }
  }

  writtenBytes(): number | undefined {
    return this.written;
  }

  async query(q: StoreQuery): Promise<LogRecord[]> {
    return queryFiles(this.dir, q, this.opts.key);
  }

  /** Files are read an hour of a topic at a time; maxScan does not apply to them. */
  async page(q: StoreQuery): Promise<{ records: LogRecord[] }> {
    return { records: queryFiles(this.dir, q, this.opts.key) };
  }

  fold(q: FoldQuery): Promise<FoldResult> {
    return foldPages(async (page) => queryFiles(this.dir, page, this.opts.key), q);
  }

  lastSeq(): number {
    return this.last;
  }

  /**
   * Whole hour files only, the oldest hour first, one file a step: an hour goes once all of it is
   * older than the rule says (and, with throughSeq, its last reading is no later).
   */
  async prune(rule: PruneRule): Promise<PruneStep> {
    const started = performance.now();
    const covered = coveredBy(rule);
    const hours: { path: string; hour: number }[] = [];
    for (const entry of readdirSync(this.dir, { withFileTypes: true })) {
      if (!entry.isDirectory() || !covered(topicOf(this.dir, entry.name))) continue;
      for (const name of readdirSync(join(this.dir, entry.name))) {
        const hour = Date.parse(`${name.slice(0, 13)}:00:00Z`);
        if (/\.jsonl(\.gz)?$/.test(name) && hour + HOUR <= rule.before) hours.push({ path: join(this.dir, entry.name, name), hour });
      }
    }
    hours.sort((a, b) => a.hour - b.hour);
    for (const { path } of hours) {
      const lines = readHourFile(path).split('\n').filter(Boolean);
      if (rule.throughSeq !== undefined && lines.length && this.line.decode(lines.at(-1)!).seq > rule.throughSeq) continue;
      unlinkSync(path);
      this.fileLast.delete(path);
      return { deleted: lines.length, done: false, ms: performance.now() - started };
    }
    return { deleted: 0, done: true, ms: performance.now() - started };
  }

  /** One hour file a step: rewritten without the readings the removal covers (or deleted if none are left). */
  async remove(removal: Removal): Promise<PruneStep> {
    const started = performance.now();
    const { from = 0, to = Number.MAX_SAFE_INTEGER } = removal;
    for (const { path } of hourFiles(this.dir, { topic: removal.topic, from, to })) {
      const lines = readHourFile(path).split('\n').filter(Boolean);
      const kept = lines.filter((l) => {
        const t = this.line.decode(l).receivedAt;
        return t < from || t > to;
      });
      if (kept.length === lines.length) continue;
      if (kept.length === 0) unlinkSync(path);
      else {
        const text = Buffer.from(`${kept.join('\n')}\n`);
        writeFileSync(`${path}.tmp`, path.endsWith('.gz') ? gzipSync(text) : text);
        renameSync(`${path}.tmp`, path);
      }
      this.fileLast.delete(path);
      return { deleted: lines.length - kept.length, done: false, ms: performance.now() - started };
    }
    return { deleted: 0, done: true, ms: performance.now() - started };
  }

  async size(cover?: TopicCover): Promise<number> {
    let bytes = 0;
    for (const entry of readdirSync(this.dir, { withFileTypes: true })) {
      if (!entry.isDirectory() || (cover && !coveredBy(cover)(topicOf(this.dir, entry.name)))) continue;
      for (const name of readdirSync(join(this.dir, entry.name))) bytes += statSync(join(this.dir, entry.name, name)).size;
    }
    return bytes;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
  }

  /** Compress every hour file whose hour ended more than the grace period ago. */
  closeHours(): void {
    if (this.partial) return;
    const cutoff = hourOf(this.now() - CLOSE_GRACE_MS);
    for (const file of this.openFiles()) {
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

  /** Write the readings of a batch to their files; then say on disk how far they are whole. */
  private writeBatch(batch: ChunkBatch): void {
    const byFile = new Map<string, LogRecord[]>();
    for (const r of batch.decode().records()) {
      if (r.seq <= this.whole) continue;
      const file = this.fileOf(r.topic, hourOf(r.receivedAt));
      let records = byFile.get(file);
      if (!records) byFile.set(file, (records = []));
      records.push(r);
    }
    if (byFile.size === 0) return;
    this.partial = true; // until saveState
    for (const [file, records] of byFile) {
      try {
        this.writeFile(file, records);
      } catch (err) {
        const code = (err as { code?: string }).code ?? '';
        if (NAME_FAULTS.has(code)) throw new RecordFault(`${code}: the topic's file name cannot be held here`);
        throw err;
      }
    }
    this.saveState(Math.max(this.whole, batch.lastSeq));
  }

  /** Append to an hour file the records it does not hold yet. */
  private writeFile(file: string, records: LogRecord[]): void {
    this.folderFor(records[0].topic, file);
    let held = this.fileLast.get(file);
    if (held === undefined) held = existsSync(file) ? this.repairTail(file) : 0;
    const fresh = records.filter((r) => r.seq > held);
    if (fresh.length) this.append(file, `${fresh.map(this.line.encode).join('\n')}\n`);
    this.fileLast.set(file, Math.max(held, records.at(-1)!.seq));
    this.last = Math.max(this.last, records.at(-1)!.seq);
  }

  private fileOf(topic: string, hour: number): string {
    return join(this.dir, topicFolder(topic), `${hourName(hour)}.jsonl`);
  }

  private openFiles(): string[] {
    return readdirSync(this.dir, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .flatMap((d) =>
        readdirSync(join(this.dir, d.name))
          .filter((f) => f.endsWith('.jsonl'))
          .map((f) => join(this.dir, d.name, f)),
      );
  }

  /** Cut a torn last line; return the seq of the last whole line (0 for none). */
  private repairTail(file: string): number {
    const fd = openSync(file, 'r+');
    try {
      const size = fstatSync(fd).size;
      let from = size;
      let tail = Buffer.alloc(0);
      // Read back from the end until a whole line and the newline before it are in hand.
      while (from > 0) {
        const step = Math.min(from, Math.max(65536, tail.length));
        from -= step;
        const part = Buffer.alloc(step);
        readSync(fd, part, 0, step, from);
        tail = Buffer.concat([part, tail]);
        const end = tail.lastIndexOf(0x0a);
        if (end >= 0 && (from === 0 || tail.lastIndexOf(0x0a, end - 1) >= 0)) break;
      }
      const end = tail.lastIndexOf(0x0a) + 1;
      if (end < tail.length) ftruncateSync(fd, from + end);
      if (end === 0) return 0;
      const lineStart = tail.lastIndexOf(0x0a, end - 2) + 1;
      return this.line.decode(tail.subarray(lineStart, end - 1).toString()).seq;
    } finally {
      closeSync(fd);
    }
  }

  /** Append lines to a file with fsync; on failure, cut it back to where it was. */
  private append(file: string, text: string): void {
    const fd = openSync(file, 'a');
    const size = fstatSync(fd).size;
    try {
      // write() may take only part of it (a disk filling up); the rest then fails with ENOSPC.
      const bytes = Buffer.from(text);
      for (let at = 0; at < bytes.length;) at += writeSync(fd, bytes, at);
      fsyncSync(fd);
    } catch (err) {
      try {
        ftruncateSync(fd, size);
      } catch {
        this.fileLast.delete(file); // read its tail again next time
      }
      throw err;
    } finally {
      closeSync(fd);
    }
  }

  /** The topic's folder, made with its `.topic` file when the name is shortened. */
  private folderFor(topic: string, file: string): void {
    const folder = dirname(file);
    if (existsSync(folder)) return;
    mkdirSync(folder, { recursive: true });
    if (basename(folder).includes('#')) writeFileSync(join(folder, TOPIC_FILE), topic);
  }

  /** Every reading up to seq is in the files (or was refused): say so on disk. */
  private saveState(seq: number): void {
    writeFileSync(`${this.statePath}.tmp`, JSON.stringify({ lastSeq: seq }));
    renameSync(`${this.statePath}.tmp`, this.statePath);
    this.whole = seq;
    this.partial = false;
  }
}

/** The topic a folder holds. */
function topicOf(dir: string, folder: string): string {
  return folder.includes('#') ? readFileSync(join(dir, folder, TOPIC_FILE), 'utf8') : decodeURIComponent(folder);
}

/** The hour files of the topics a filter matches that may hold readings received in [from, to]. */
function hourFiles(dir: string, q: { topic?: string; from: number; to: number }): { path: string; hour: number }[] {
  const out: { path: string; hour: number }[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const topic = topicOf(dir, entry.name);
    if (q.topic !== undefined && !topicMatches(q.topic, topic)) continue;
    for (const name of readdirSync(join(dir, entry.name))) {
      if (!name.endsWith('.jsonl') && !name.endsWith('.jsonl.gz')) continue;
      const hour = Date.parse(`${name.slice(0, 13)}:00:00Z`);
      if (hour + HOUR > q.from && hour <= q.to) out.push({ path: join(dir, entry.name, name), hour });
    }
  }
  return out.sort((a, b) => a.hour - b.hour);
}

/**
 * Readings of a files store, read only (also beside a running agent): the hour files in time
 * order (a file holds the readings received in its hour), each sorted by time and seq, until the
 * page is full.
 */
export function queryFiles(dir: string, q: StoreQuery, key?: Buffer): LogRecord[] {
  const line = lineCodec(key);
  const from = q.from ?? 0;
  const to = q.to ?? Number.MAX_SAFE_INTEGER;
  const limit = q.limit ?? 1000;
  const desc = q.order === 'desc';
  const files = hourFiles(dir, { topic: q.topic, from, to });
  if (desc) files.reverse();
  const out: LogRecord[] = [];
  for (let i = 0; i < files.length;) {
    // All files of one hour together: seq order holds across topics within it.
    const hour = files[i].hour;
    const batch: LogRecord[] = [];
    for (; i < files.length && files[i].hour === hour; i++) {
      for (const stored of readHourFile(files[i].path).split('\n')) {
        if (!stored) continue;
        const r = line.decode(stored);
        if (r.receivedAt < from || r.receivedAt > to) continue;
        if ((q.afterSeq !== undefined && r.seq <= q.afterSeq) || (q.after && !pastPosition(r, q.after, desc))) continue;
        if (q.exceptSeqs && r.seq > q.exceptSeqs.after && r.seq <= q.exceptSeqs.through) continue;
        if (matchesWhere(r, q.where)) batch.push(r);
      }
    }
    out.push(...batch.sort(timeOrder(desc)));
    if (out.length >= limit) break;
  }
  return out.slice(0, limit);
}
