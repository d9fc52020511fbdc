// The log's write-ahead journal: a file of fixed size, filled with zeros once and then overwritten in
// place as a ring, so that syncing a commit sends only the pages it touched to the card. LevelDB's own
// log grows with every write, and each sync of a growing file also costs the filesystem's journal a
// commit of several blocks: about 16 kB on the device for a reading alone. A commit's chunks go into
// LevelDB only at a checkpoint, before the ring overwrites frames (and then only those no consumer
// passed meanwhile), so every frame overwritten is in LevelDB on disk; at start what the frames hold
// that LevelDB lacks goes into it.
import { open, type FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';

/**
 * "EAJ2": each frame starts a page. A sync sends the card every page a frame touched, so a frame
 * that began in the page the one before ended in cost one more page: 1.4 pages a sync at 1,000
 * readings/s QoS 1 (commits of about 1.6 kB), where one does. The padding is never written.
 */
const MAGIC = 0x45414a32;
/** "EAJ1": frames one after another, as an agent before EAJ2 wrote them (read at start, so its frames are replayed). */
const MAGIC_PACKED = 0x45414a31;
const PAGE = 4096;
/** magic u32, number u64, body length u32, CRC-32 of number, length and body u32 */
const HEADER = 20;

const pageAfter = (at: number) => Math.ceil(at / PAGE) * PAGE;

export type JournalOp = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string };

export interface Frame {
  /** Commits are numbered one after another; LevelDB keeps the number of the last it holds. */
  number: number;
  ops: JournalOp[];
}

function encodeOps(ops: JournalOp[]): Buffer {
  const parts: Buffer[] = [];
  for (const op of ops) {
    const key = Buffer.from(op.key);
    const head = Buffer.alloc(7);
    head.writeUInt8(op.type === 'put' ? 1 : 0, 0);
    head.writeUInt16BE(key.length, 1);
    head.writeUInt32BE(op.type === 'put' ? op.value.byteLength : 0, 3);
    parts.push(head, key);
    if (op.type === 'put') parts.push(Buffer.from(op.value.buffer, op.value.byteOffset, op.value.byteLength));
  }
  return Buffer.concat(parts);
}

function decodeOps(body: Buffer): JournalOp[] {
  const ops: JournalOp[] = [];
  for (let at = 0; at < body.length;) {
    const put = body.readUInt8(at) === 1;
    const keyLength = body.readUInt16BE(at + 1);
    const valueLength = body.readUInt32BE(at + 3);
    const key = body.toString('utf8', at + 7, at + 7 + keyLength);
    at += 7 + keyLength;
    ops.push(put ? { type: 'put', key, value: new Uint8Array(body.subarray(at, at + valueLength)) } : { type: 'del', key });
    at += valueLength;
  }
  return ops;
}

/** A commit as a frame: header (magic, number, length, CRC-32) and its ops. */
export function encodeFrame(number: number, ops: JournalOp[]): Buffer {
  const body = encodeOps(ops);
  const frame = Buffer.alloc(HEADER + body.length);
  frame.writeUInt32BE(MAGIC, 0);
  frame.writeBigUInt64BE(BigInt(number), 4);
  frame.writeUInt32BE(body.length, 12);
  body.copy(frame, HEADER);
  frame.writeUInt32BE(crc32(body, crc32(frame.subarray(4, 16))), 16);
  return frame;
}

/** The frames from the start of the ring, numbered one after another, up to the first that is not (torn, zeros, an older lap). */
function readFrames(file: Buffer): Frame[] {
  const frames: Frame[] = [];
  for (let at = 0; at + HEADER <= file.length;) {
    const magic = file.readUInt32BE(at);
    if (magic !== MAGIC && magic !== MAGIC_PACKED) break;
    const number = Number(file.readBigUInt64BE(at + 4));
    const length = file.readUInt32BE(at + 12);
    if (at + HEADER + length > file.length) break;
    const body = file.subarray(at + HEADER, at + HEADER + length);
    if (crc32(body, crc32(file.subarray(at + 4, at + 16))) !== file.readUInt32BE(at + 16)) break;
    if (frames.length && number !== frames.at(-1)!.number + 1) break;
    frames.push({ number, ops: decodeOps(body) });
    at = magic === MAGIC ? pageAfter(at + HEADER + length) : at + HEADER + length;
  }
  return frames;
}

export class Journal {
  private position = 0;
  /** Written since the last sync. */
  private dirty = false;

  private constructor(
    private readonly file: FileHandle,
    readonly size: number,
  ) {}

  /** Open (or make, zero-filled) the journal at `path`; also the frames it holds, oldest first. */
  static async open(path: string, size: number): Promise<{ journal: Journal; frames: Frame[] }> {
    const file = await open(path, 'r+').catch((err: NodeJS.ErrnoException) =>
      err.code === 'ENOENT' ? open(path, 'w+', 0o600) : Promise.reject(err),
    );
    try {
      const { size: found } = await file.stat();
      let frames: Frame[] = [];
      if (found === size) {
        const content = Buffer.alloc(size);
        await file.read(content, 0, size, 0);
        frames = readFrames(content);
      }
      const journal = new Journal(file, size);
      if (found !== size) await journal.clear();
      return { journal, frames };
    } catch (err) {
      await file.close();
      throw err;
    }
  }

  /**
   * Empty it: zeros written page by page, not fallocate'd (overwriting allocated, written blocks
   * changes no metadata), after a truncate that drops the pages cached by the read at open. Page by
   * page, because the page cache keeps what one large write or read brings in as large folios, and a
   * sync writes back the whole folio a frame dirtied (2 MB a commit on a kernel with ext4 large folios).
   */
  async clear(): Promise<void> {
    await this.file.truncate(0);
    const page = Buffer.alloc(4096);
    for (let at = 0; at < this.size; at += page.length) await this.file.write(page, 0, page.length, at);
    await this.file.sync();
    this.position = 0;
  }

  /** Whether a frame of these ops fits before the ring's end (else: checkpoint, then restart()). */
  fits(frame: Buffer): boolean {
    return this.position + frame.length <= this.size;
  }

  /** Write from the ring's start again: everything before is in LevelDB on disk. */
  restart(): void {
    this.position = 0;
  }

  /** Write a frame at the page after the last; `sync`: on the device before this resolves. */
  async write(frame: Buffer, sync: boolean): Promise<void> {
    await this.file.write(frame, 0, frame.length, this.position);
    this.position = pageAfter(this.position + frame.length);
    this.dirty = true;
    if (sync) await this.sync();
  }

  /** Everything written so far on the device (data only: the file's size and blocks never change). */
  async sync(): Promise<void> {
    if (!this.dirty) return;
    this.dirty = false;
    await this.file.datasync();
  }

  get unsynced(): boolean {
    return this.dirty;
  }

  close(): Promise<void> {
    return this.file.close();
  }
}
