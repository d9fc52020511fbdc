// Giving up under disk pressure: the oldest chunk no consumer has in hand goes, its readings counted
// against each consumer that had not confirmed them, and LevelDB compacts what was deleted so the
// space comes back.
import type { ChunkList } from './chunk-list.js';
import type { Cursors } from './cursors.js';
import { chunkKey } from './keys.js';
import type { LevelStore } from './level-store.js';

/** What dropping the oldest unsent chunk gave up. */
export interface ChunkDrop {
  firstSeq: number;
  lastSeq: number;
  bytes: number;
  /** Readings of it each consumer had not yet confirmed. */
  perConsumer: Record<string, number>;
}

export class Relief {
  /** Chunk keys deleted under pressure and not yet compacted away. */
  private uncompacted: { from: string; to: string } | undefined;

  constructor(
    private readonly store: LevelStore,
    private readonly chunks: ChunkList,
    private readonly cursors: Cursors,
    /** Takes a chunk out of the list and the caches. */
    private readonly unlist: (firstSeq: number) => void,
    /** A chunk only in the journal and in memory (since the last checkpoint): dropping it frees no disk. */
    private readonly unfolded: (firstSeq: number) => boolean,
  ) {}

  /**
   * Delete the oldest chunk (ending by `upTo`) some consumer has not confirmed and none holds in its
   * hands (read, being sent), counting its readings against each consumer that had not confirmed
   * them; null if none.
   */
  async dropOldestUnsent(reason: string, upTo = Infinity): Promise<ChunkDrop | null> {
    const floor = this.cursors.floor();
    const chunk = this.chunks.find(
      (c) => c.lastSeq <= upTo && c.lastSeq > floor && !this.cursors.isHeld(c.firstSeq, c.lastSeq) && !this.unfolded(c.firstSeq),
    );
    if (!chunk) return null;
    const { ops, totals, perConsumer } = this.cursors.lostBy(chunk.firstSeq, chunk.lastSeq, reason);
    ops.unshift({ type: 'del', key: chunkKey(chunk.firstSeq) });
    // Out of the list before the write: no consumer takes it in hand meanwhile (and its count stays exact).
    this.unlist(chunk.firstSeq);
    try {
      await this.store.change(ops, true);
    } catch (err) {
      this.chunks.restore(chunk);
      throw err;
    }
    this.cursors.countDrops(totals);
    const key = chunkKey(chunk.firstSeq);
    this.uncompacted = {
      from: this.uncompacted && this.uncompacted.from < key ? this.uncompacted.from : key,
      to: this.uncompacted && this.uncompacted.to > key ? this.uncompacted.to : key,
    };
    return { firstSeq: chunk.firstSeq, lastSeq: chunk.lastSeq, bytes: chunk.bytes, perConsumer };
  }

  /**
   * LevelDB frees the space of deleted chunks and dead letters only as it compacts their files: do it
   * now, for the keys deleted (only the files holding them are rewritten, not the whole log).
   */
  async compact(what: 'chunks' | 'deadLetters'): Promise<void> {
    if (what === 'deadLetters') return this.store.compactRange('d!', 'd"');
    const range = this.uncompacted;
    if (!range) return;
    await this.store.compactRange(range.from, `${range.to}~`);
    this.uncompacted = undefined;
  }
}
