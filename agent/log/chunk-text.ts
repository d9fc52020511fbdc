// A chunk's readings decompressed into one Buffer, with where each line starts. The text lives off
// the JS heap and a line becomes a string only when a consumer asks for it: a consumer that holds
// readings for a while (a sink, until the server confirms) does not make the garbage collector copy
// and promote a string per reading.
import { chunkBody, CorruptChunk, type ChunkHeader } from './chunk.js';

const NEWLINE = 0x0a;

export class ChunkText {
  private constructor(
    private readonly body: Buffer,
    /** Where line k starts; starts[count] is one past the end (where a next line would start). */
    private readonly starts: Int32Array,
    readonly firstSeq: number,
  ) {}

  /** A verified chunk's text; throws CorruptChunk when it does not hold the readings its header says. */
  static decode(value: Uint8Array, header: ChunkHeader, key?: Buffer): ChunkText {
    return ChunkText.index(chunkBody(value, header, key), header.count, header.firstSeq);
  }

  /** Lines not read from the log (tests, benchmarks). */
  static of(lines: readonly string[], firstSeq: number): ChunkText {
    return ChunkText.index(Buffer.from(lines.join('\n')), lines.length, firstSeq);
  }

  private static index(body: Buffer, count: number, firstSeq: number): ChunkText {
    const starts = new Int32Array(count + 1);
    let at = 0;
    for (let k = 1; k < count; k++) {
      at = body.indexOf(NEWLINE, at) + 1;
      if (at === 0) throw new CorruptChunk(`holds ${k} readings, header says ${count}`);
      starts[k] = at;
    }
    if (body.indexOf(NEWLINE, at) !== -1) throw new CorruptChunk(`holds more readings than the ${count} its header says`);
    starts[count] = body.length + 1;
    return new ChunkText(body, starts, firstSeq);
  }

  get count(): number {
    return this.starts.length - 1;
  }

  get lastSeq(): number {
    return this.firstSeq + this.count - 1;
  }

  /** Bytes of the text (lines and the newlines between them). */
  get size(): number {
    return this.body.length;
  }

  /** Line k (the reading with seq firstSeq + k). */
  line(k: number): string {
    return this.body.toString('utf8', this.starts[k], this.starts[k + 1] - 1);
  }

  /** UTF-8 length of line k. */
  lineBytes(k: number): number {
    return this.starts[k + 1] - 1 - this.starts[k];
  }
}

/** Consecutive readings firstSeq..lastSeq as the texts of their chunks (the first may start before firstSeq, the last end after lastSeq). */
export class TextBatch {
  constructor(
    readonly agentId: string,
    readonly texts: readonly ChunkText[],
    readonly firstSeq: number,
    readonly lastSeq: number,
  ) {}

  /** The line of the reading with this seq, one of firstSeq..lastSeq. */
  line(seq: number): string {
    const text = this.texts.find((t) => seq <= t.lastSeq)!;
    return text.line(seq - text.firstSeq);
  }

  /** Every reading's line, in seq order. */
  lines(): string[] {
    const out: string[] = [];
    for (const text of this.texts) {
      const last = Math.min(text.lastSeq, this.lastSeq);
      for (let seq = Math.max(text.firstSeq, this.firstSeq); seq <= last; seq++) out.push(text.line(seq - text.firstSeq));
    }
    return out;
  }
}
