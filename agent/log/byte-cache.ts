// Values kept up to a total size, the oldest dropped first: the log's in-memory copies of chunks.

export class ByteCache<V> {
  private readonly entries = new Map<number, { value: V; bytes: number }>();
  private total = 0;

  constructor(readonly limit: number) {}

  get(key: number): V | undefined {
    return this.entries.get(key)?.value;
  }

  /** Keep `value`, dropping the oldest entries until it fits (or none is left). */
  set(key: number, value: V, bytes: number): void {
    this.delete(key);
    for (const oldest of this.entries.keys()) {
      if (this.total + bytes <= this.limit) break;
      this.delete(oldest);
    }
    this.entries.set(key, { value, bytes });
    this.total += bytes;
  }

  delete(key: number): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    this.total -= entry.bytes;
  }
}
