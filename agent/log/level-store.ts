// The log's LevelDB: every write but the journal's goes through change(). LevelDB keeps a failed
// background write (ENOSPC in a compaction) and fails every write after it until reopened: after a
// failure the next write reopens it first.
import { mkdirSync } from 'node:fs';
import { ClassicLevel } from 'classic-level';
import type { Op } from './keys.js';

export type Level = ClassicLevel<string, Uint8Array>;

/**
 * LevelDB's memtable: the chunks written since its last flush, held in malloc's heap until it is
 * full, however slowly readings come. 1 MB (LevelDB's default is 4) bounds it; its smaller tables
 * cost about 4% more bytes written in a flood (docs/where-time-goes.md, memory).
 */
const WRITE_BUFFER_BYTES = 1024 * 1024;

/** LevelDB as the log opens it; chunks are read soon after they are written (from the log's own cache), so its cache stays small. */
export const openLevel = (dir: string): Level =>
  new ClassicLevel<string, Uint8Array>(dir, { valueEncoding: 'view', cacheSize: 2 * 1024 * 1024, writeBufferSize: WRITE_BUFFER_BYTES });

export class LevelStore {
  private db: Level;
  /** A write failed: LevelDB is reopened before the next one. */
  private broken = false;
  private reopening: Promise<void> | undefined;

  constructor(
    private readonly dir: string,
    private readonly level: (dir: string) => Level = openLevel,
  ) {
    mkdirSync(dir, { recursive: true });
    this.db = level(dir);
  }

  open(): Promise<void> {
    return this.db.open();
  }

  get(key: string): Promise<Uint8Array | undefined> {
    return this.db.get(key);
  }

  iterator(range: { gte: string; lt: string; reverse?: boolean }) {
    return this.db.iterator(range);
  }

  /** A write (cursors, deletions, quarantine, a commit); its error is the caller's, an error of the moment. */
  async change(ops: Op[], sync = false): Promise<void> {
    if (this.broken) await this.reopen();
    try {
      await this.db.batch(ops, { sync });
    } catch (err) {
      this.broken = true;
      throw err;
    }
  }

  /** LevelDB frees the space of deleted keys only as it compacts their files: do it now for this range. */
  compactRange(from: string, to: string): Promise<void> {
    return this.db.compactRange(from, to);
  }

  close(): Promise<void> {
    return this.db.close();
  }

  /** LevelDB keeps a write error (ENOSPC) for good: a fresh handle writes once the disk can. */
  private reopen(): Promise<void> {
    this.reopening ??= (async () => {
      await this.db.close();
      this.db = this.level(this.dir);
      await this.db.open();
      this.broken = false;
    })().finally(() => (this.reopening = undefined));
    return this.reopening;
  }
}
