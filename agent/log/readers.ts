// Reading the log: consecutive durable readings after a consumer's seq, as decompressed texts or as
// chunks still compressed, from the newest chunks kept in memory as committed or from LevelDB, each
// checked; what a reader takes is in its hands (never dropped) until the consumer confirms it.
import { ByteCache } from './byte-cache.js';
import { ChunkBatch } from './chunk-batch.js';
import type { ChunkInfo, ChunkList } from './chunk-list.js';
import { ChunkText, TextBatch } from './chunk-text.js';
import { CorruptChunk, verifyChunk, type ChunkHeader } from './chunk.js';
import type { Cursors } from './cursors.js';
import { chunkKey } from './keys.js';
import type { LevelStore } from './level-store.js';

/** Decompressed chunks kept for consumers reading near each other (each sink's lanes). */
const DECODED_CACHE_BYTES = 4 * 1024 * 1024;
/**
 * The newest chunks, compressed, as committed. Under load the event loop is busy with publishers'
 * sockets, and each LevelDB read a consumer awaits waits its turn behind them: reading the last few
 * commits from memory keeps the store and the sinks up with ingest.
 */
export const RECENT_CHUNK_BYTES = 4 * 1024 * 1024;

/** Where a reader finds chunks not yet in LevelDB, and what the log does with one it finds damaged or missing (out of the list after). */
export interface ReaderHooks {
  quarantine(key: string, value: Uint8Array, reason: string): Promise<void>;
  missing(info: ChunkInfo): Promise<void>;
  /** A chunk committed since the last checkpoint, not yet in LevelDB. */
  unfolded(firstSeq: number): Uint8Array | undefined;
}

export class Readers {
  /** Decompressed recently read chunks, by firstSeq: consumers usually read the newest ones. */
  private readonly decoded = new ByteCache<ChunkText>(DECODED_CACHE_BYTES);
  /** The newest chunks as committed, by firstSeq. */
  private readonly recent: ByteCache<Uint8Array>;

  constructor(
    private readonly opts: { agentId: string; encryptionKey?: Buffer; recentChunkBytes?: number },
    private readonly store: LevelStore,
    private readonly chunks: ChunkList,
    private readonly cursors: Cursors,
    private readonly hooks: ReaderHooks,
  ) {
    this.recent = new ByteCache(opts.recentChunkBytes ?? RECENT_CHUNK_BYTES);
  }

  /**
   * Up to `max` consecutive durable readings after afterSeq, as the decompressed texts of their
   * chunks; null if none. `peek`: only a look (a status), not readings taken in hand.
   */
  readTexts(consumer: string, afterSeq: number, max: number, peek: boolean): Promise<TextBatch | null> {
    return this.cursors.whileReading(afterSeq, async () => {
      this.cursors.cursor(consumer);
      const texts: ChunkText[] = [];
      let firstSeq = 0;
      let lastSeq = 0;
      for await (const { from, value } of this.consecutive(afterSeq, (c) => this.textOf(c))) {
        if (!texts.length) firstSeq = from;
        texts.push(value);
        lastSeq = Math.min(value.lastSeq, firstSeq + max - 1);
        if (lastSeq - firstSeq + 1 >= max) break;
      }
      if (texts.length && !peek) this.cursors.hold(consumer, firstSeq, lastSeq);
      return texts.length ? new TextBatch(this.opts.agentId, texts, firstSeq, lastSeq) : null;
    });
  }

  /**
   * Durable readings after afterSeq as whole chunks, still compressed, up to about `max` readings or
   * `maxBytes` of chunks (at least one chunk); null if none. For a consumer that decodes them elsewhere.
   */
  readChunks(consumer: string, afterSeq: number, max: number, maxBytes: number): Promise<ChunkBatch | null> {
    return this.cursors.whileReading(afterSeq, async () => {
      this.cursors.cursor(consumer);
      const values: Uint8Array[] = [];
      let firstSeq = 0;
      let lastSeq = 0;
      let bytes = 0;
      for await (const { info, from, value } of this.consecutive(afterSeq, async (c) => (await this.verified(c))?.value ?? null)) {
        if (!values.length) firstSeq = from;
        values.push(value);
        lastSeq = info.lastSeq;
        bytes += value.byteLength;
        if (lastSeq - firstSeq + 1 >= max || bytes >= maxBytes) break;
      }
      if (values.length) this.cursors.hold(consumer, firstSeq, lastSeq);
      return values.length ? new ChunkBatch(this.opts.agentId, values, firstSeq, lastSeq, this.opts.encryptionKey) : null;
    });
  }

  /** A chunk just committed, kept in memory for the consumers close behind. */
  keepRecent(firstSeq: number, value: Buffer): void {
    if (value.length <= this.recent.limit) this.recent.set(firstSeq, value, value.length);
  }

  /** Drop a chunk from the in-memory caches (it was deleted, quarantined or found missing). */
  forget(firstSeq: number): void {
    this.recent.delete(firstSeq);
    this.decoded.delete(firstSeq);
  }

  /**
   * The chunks holding readings after afterSeq, in order, with the first seq each contributes, up to
   * a gap (a quarantined chunk). `load` reads one; null means it was taken out of the list.
   */
  private async *consecutive<T>(
    afterSeq: number,
    load: (info: ChunkInfo) => Promise<T | null>,
  ): AsyncGenerator<{ info: ChunkInfo; from: number; value: T }> {
    let next = 0; // the seq the next chunk must start at; 0 before the first
    // Found by seq at each step, not by index: a consumer's commit may drop chunks from the front
    // of the list while this reads (a batch prepared while the one before it settles).
    for (let seq = afterSeq; ;) {
      const info = this.chunks.at(this.chunks.firstAfter(seq));
      if (!info) return;
      const from = Math.max(afterSeq + 1, info.firstSeq);
      if (next && from !== next) return; // a gap: stop here
      const value = await load(info);
      if (value === null) continue; // taken out of the list: look again
      yield { info, from, value };
      next = info.lastSeq + 1;
      seq = info.lastSeq;
    }
  }

  /** A chunk as stored, after its checksum; null once quarantined (or found missing), and out of the list. */
  private async verified(info: ChunkInfo): Promise<{ value: Uint8Array; header: ChunkHeader } | null> {
    const key = chunkKey(info.firstSeq);
    const value = this.recent.get(info.firstSeq) ?? this.hooks.unfolded(info.firstSeq) ?? (await this.store.get(key));
    if (!value) {
      await this.hooks.missing(info);
      return null;
    }
    try {
      return { value, header: verifyChunk(value) };
    } catch (err) {
      if (!(err instanceof CorruptChunk)) throw err;
      await this.hooks.quarantine(key, value, err.message);
      return null;
    }
  }

  private async textOf(info: ChunkInfo): Promise<ChunkText | null> {
    const cached = this.decoded.get(info.firstSeq);
    if (cached) return cached;
    const chunk = await this.verified(info);
    if (!chunk) return null;
    try {
      const text = ChunkText.decode(chunk.value, chunk.header, this.opts.encryptionKey);
      this.decoded.set(info.firstSeq, text, text.size);
      return text;
    } catch (err) {
      if (!(err instanceof CorruptChunk)) throw err;
      await this.hooks.quarantine(chunkKey(info.firstSeq), chunk.value, err.message);
      return null;
    }
  }
}
