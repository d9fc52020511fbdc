// Lines written into a growing Buffer as they are encoded. A batch's text built as one string
// would be a rope of thousands of small strings that stays alive until the batch is sent: the
// young-generation GC would copy it, then promote it, batch after batch. Here each line is garbage
// as soon as it is written, and the text lives off the JS heap.

export class LineBuffer {
  private buf: Buffer;
  private length = 0;
  count = 0;

  constructor(initialBytes = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(initialBytes);
  }

  /** Appends a line (newline-separated from the one before). */
  push(line: string): void {
    const room = line.length * 3 + 1; // the most UTF-8 bytes a UTF-16 string can take
    if (this.length + room > this.buf.length) this.grow(this.length + room);
    if (this.count++ > 0) this.buf[this.length++] = 0x0a;
    this.length += this.buf.write(line, this.length);
  }

  /** Empty again, keeping the memory. */
  clear(): void {
    this.length = 0;
    this.count = 0;
  }

  /** The text so far (a view of the buffer: push no more after taking it). */
  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }

  private grow(needed: number): void {
    const next = Buffer.allocUnsafe(Math.max(needed, this.buf.length * 2));
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }
}
