// The chunks the log holds, in seq order: what every part of the log looks chunks up in.
export interface ChunkInfo {
  firstSeq: number;
  lastSeq: number;
  bytes: number;
  /** When this process committed it (Date.now()); 0 for chunks found at start-up. */
  committedAt: number;
}

export class ChunkList {
  private readonly chunks: ChunkInfo[] = [];

  get length(): number {
    return this.chunks.length;
  }

  get first(): ChunkInfo | undefined {
    return this.chunks[0];
  }

  at(i: number): ChunkInfo | undefined {
    return this.chunks[i];
  }

  add(...chunks: ChunkInfo[]): void {
    this.chunks.push(...chunks);
  }

  /** Put a chunk back in its place (a deletion that failed). */
  restore(chunk: ChunkInfo): void {
    this.chunks.splice(this.firstAfter(chunk.firstSeq - 1), 0, chunk);
  }

  /** Take the chunk that starts at firstSeq out of the list; whether it was there. */
  remove(firstSeq: number): boolean {
    const i = this.chunks.findIndex((c) => c.firstSeq === firstSeq);
    if (i >= 0) this.chunks.splice(i, 1);
    return i >= 0;
  }

  /** Take the chunks whose readings all have seq <= floor off the front. */
  shiftUpTo(floor: number): ChunkInfo[] {
    const gone: ChunkInfo[] = [];
    while (this.chunks.length && this.chunks[0].lastSeq <= floor) gone.push(this.chunks.shift()!);
    return gone;
  }

  find(test: (c: ChunkInfo) => boolean): ChunkInfo | undefined {
    return this.chunks.find(test);
  }

  /** The index of the first chunk holding a reading with seq > `seq` (the length if none). */
  firstAfter(seq: number): number {
    let lo = 0;
    let hi = this.chunks.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.chunks[mid].lastSeq <= seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Readings the chunks hold. */
  readings(): number {
    return this.chunks.reduce((n, c) => n + c.lastSeq - c.firstSeq + 1, 0);
  }

  bytes(): number {
    return this.chunks.reduce((n, c) => n + c.bytes, 0);
  }
}
