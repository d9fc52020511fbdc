// Consecutive readings as the log keeps them: its compressed (maybe sealed) chunks, for a consumer
// that decodes them where it works (the SQLite store does it in its worker thread, sparing the
// event loop that acknowledges readings the decompression and the copy of every line).
import { chunkLines, verifyChunk } from './chunk.js';
import type { ClockOffsets } from '../ingest/clock-correction.js';
import { LogBatch } from './record.js';

export class ChunkBatch {
  constructor(
    readonly agentId: string,
    /** Whole chunks, verified (CRC); the first may hold readings before firstSeq, which are not part of the batch. */
    readonly chunks: Uint8Array[],
    readonly firstSeq: number,
    readonly lastSeq: number,
    /** The log's encryption key, when its chunks are sealed. */
    readonly key?: Buffer,
    /** Corrects the times of readings received while the clock was unsynchronised (see ingest/clock.ts). */
    readonly clock?: ClockOffsets,
  ) {}

  withClock(clock: ClockOffsets): ChunkBatch {
    return new ChunkBatch(this.agentId, this.chunks, this.firstSeq, this.lastSeq, this.key, clock);
  }

  get count(): number {
    return this.lastSeq - this.firstSeq + 1;
  }

  /** Bytes of its chunks, as the log keeps them. */
  get bytes(): number {
    return this.chunks.reduce((n, c) => n + c.byteLength, 0);
  }

  /** The readings as JSON lines, decoded here. */
  decode(): LogBatch {
    return new LogBatch(this.agentId, batchLines(this.chunks, this.firstSeq, this.lastSeq, this.key), this.firstSeq, this.clock);
  }

  /** The readings firstSeq..lastSeq of this batch (whole chunks are shared, not copied). */
  slice(firstSeq: number, lastSeq: number): ChunkBatch {
    const chunks = this.chunks.filter((c) => {
      const h = verifyChunk(c);
      return h.lastSeq >= firstSeq && h.firstSeq <= lastSeq;
    });
    return new ChunkBatch(this.agentId, chunks, firstSeq, lastSeq, this.key, this.clock);
  }
}

/** The JSON lines of consecutive chunks, firstSeq..lastSeq (checked again: they may have crossed to another thread). */
export function batchLines(chunks: readonly Uint8Array[], firstSeq: number, lastSeq: number, key?: Buffer): string[] {
  const out: string[] = [];
  for (const value of chunks) {
    const header = verifyChunk(value);
    const lines = chunkLines(value, header, key);
    const end = Math.min(lines.length, lastSeq - header.firstSeq + 1);
    for (let k = Math.max(0, firstSeq - header.firstSeq); k < end; k++) out.push(lines[k]);
  }
  return out;
}
