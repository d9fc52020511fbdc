// The store's blocks: a topic's readings of one write, up to BLOCK_READINGS, as one row. A row per
// reading cost the SD card about 200 bytes a reading at 1,000 readings/s (the row, two indexes whose
// pages every transaction split and journalled); a block, deflated, costs about 15, and is written
// once, at the end of the table. The rows of a block are a JSON array (so SQLite's json_each reads
// them), compressed as SQLite's sqlar_compress does (zlib, kept as it is when that is not smaller),
// so the sqlite3 shell's sqlar_uncompress opens it: the `readings` view works there as it is.
import { deflateSync, inflateSync } from 'node:zlib';

/** Readings in one block at most: enough to compress well (a hobby sensor's 70-byte reading to 12-13 bytes), few to decode (a page of 100 opens a block per topic). */
export const BLOCK_READINGS = 256;

/** One reading as a block holds it. Payload: its JSON text, or a raw topic's base64. */
export interface BlockEntry {
  seq: number;
  at: number;
  deviceTime: number | null;
  clockSynced: boolean;
  clockCorrectionMs: number | null;
  client: number;
  schema: number | null;
  qos: number;
  encoding: string | null;
  payload: string;
}

/** A block as the table holds it. `size`: the rows' text length, in bytes (sqlar_uncompress's second argument). */
export interface EncodedBlock {
  firstSeq: number;
  lastSeq: number;
  firstAt: number;
  lastAt: number;
  count: number;
  payloadBytes: number;
  size: number;
  data: Buffer;
}

/**
 * A block's row of one reading: [seq - first seq, at - first at, device time, clock synced (0/1),
 * clock correction ms, client id, schema id, qos, encoding, payload text]. Offsets from the block's
 * first seq and time: short numbers, which compress better.
 */
type Row = [number, number, number | null, 0 | 1, number | null, number, number | null, number, string | null, string];

/** Readings in (receive time, seq) order: the order queries read them in. */
export const inOrder = (a: { at: number; seq: number }, b: { at: number; seq: number }) => a.at - b.at || a.seq - b.seq;

/** Entries of one topic (at least one) as a block. */
export function encodeBlock(entries: BlockEntry[]): EncodedBlock {
  const sorted = [...entries].sort(inOrder);
  let firstSeq = Infinity;
  let lastSeq = -Infinity;
  let payloadBytes = 0;
  for (const e of sorted) {
    firstSeq = Math.min(firstSeq, e.seq);
    lastSeq = Math.max(lastSeq, e.seq);
    payloadBytes += Buffer.byteLength(e.payload);
  }
  const firstAt = sorted[0].at;
  const rows = sorted.map((e): Row => [
    e.seq - firstSeq,
    e.at - firstAt,
    e.deviceTime,
    e.clockSynced ? 1 : 0,
    e.clockCorrectionMs,
    e.client,
    e.schema,
    e.qos,
    e.encoding,
    e.payload,
  ]);
  const text = Buffer.from(JSON.stringify(rows));
  const deflated = deflateSync(text);
  return {
    firstSeq,
    lastSeq,
    firstAt,
    lastAt: sorted[sorted.length - 1].at,
    count: sorted.length,
    payloadBytes,
    size: text.length,
    data: deflated.length < text.length ? deflated : text,
  };
}

/** sqlar_uncompress: what the `readings` view calls (the sqlite3 shell has its own). */
export function uncompress(data: Buffer, size: number): Buffer {
  return data.length === size ? data : inflateSync(data);
}

/** A block's entries, in (receive time, seq) order, each with its topic (an id: the block's, made once). */
export function decodeBlock(
  block: Pick<EncodedBlock, 'firstSeq' | 'firstAt' | 'size' | 'data'>,
  topic = 0,
): (BlockEntry & { topic: number })[] {
  const rows = JSON.parse(uncompress(block.data, block.size).toString()) as Row[];
  return rows.map(([seq, at, deviceTime, synced, correction, client, schema, qos, encoding, payload]) => ({
    topic,
    seq: block.firstSeq + seq,
    at: block.firstAt + at,
    deviceTime,
    clockSynced: synced === 1,
    clockCorrectionMs: correction,
    client,
    schema,
    qos,
    encoding,
    payload,
  }));
}

/** A block to merge: where it starts and ends in time, and its entries (of one topic) when opened. */
export interface BlockRef<T> {
  firstAt: number;
  lastAt: number;
  open(): T[];
}

/** Entries of one opened block, walked in the merge's order. */
interface Cursor<T> {
  entries: T[];
  at: number;
}

/**
 * The entries of blocks in (receive time, seq) order, ascending or descending. `blocks` come in
 * order of their first time (descending: of their last), and are opened only when their turn may
 * have come, so a query for the latest few opens the latest blocks only. Blocks of different topics
 * overlap in time (one write makes a block for each topic), and so may a topic's own after a clock step.
 */
export function* mergeBlocks<T extends { at: number; seq: number }>(blocks: Iterable<BlockRef<T>>, desc: boolean): Generator<T> {
  const before = desc ? (a: T, b: T) => inOrder(b, a) < 0 : (a: T, b: T) => inOrder(a, b) < 0;
  const heap = new Heap<Cursor<T>>((a, b) => before(a.entries[a.at], b.entries[b.at]));
  const next = blocks[Symbol.iterator]();
  let pending = next.next();
  // A block can hold what comes next once the reading at hand is not before where it starts.
  const mayHoldNext = (b: BlockRef<T>, e: T) => (desc ? b.lastAt >= e.at : b.firstAt <= e.at);
  try {
    for (;;) {
      while (!pending.done && (heap.size === 0 || mayHoldNext(pending.value, heap.peek().entries[heap.peek().at]))) {
        const entries = pending.value.open();
        if (desc) entries.reverse();
        if (entries.length) heap.push({ entries, at: 0 });
        pending = next.next();
      }
      if (heap.size === 0) return;
      const top = heap.peek();
      yield top.entries[top.at];
      if (++top.at === top.entries.length) heap.pop();
      else heap.siftDown();
    }
  } finally {
    next.return?.();
  }
}

/** A binary heap: the cursors of the blocks being merged, the one with the next entry on top. */
class Heap<T> {
  private readonly items: T[] = [];

  constructor(private readonly before: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  peek(): T {
    return this.items[0];
  }

  push(item: T): void {
    const items = this.items;
    items.push(item);
    for (let i = items.length - 1; i > 0;) {
      const parent = (i - 1) >> 1;
      if (!this.before(items[i], items[parent])) break;
      [items[i], items[parent]] = [items[parent], items[i]];
      i = parent;
    }
  }

  pop(): void {
    const last = this.items.pop()!;
    if (this.items.length) {
      this.items[0] = last;
      this.siftDown();
    }
  }

  /** The top changed: move it down to its place. */
  siftDown(): void {
    const items = this.items;
    for (let i = 0; ;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let min = i;
      if (l < items.length && this.before(items[l], items[min])) min = l;
      if (r < items.length && this.before(items[r], items[min])) min = r;
      if (min === i) return;
      [items[i], items[min]] = [items[min], items[i]];
      i = min;
    }
  }
}
