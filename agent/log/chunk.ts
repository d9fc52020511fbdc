// One group commit on disk: a header with the seq range and a CRC-32, then the lz4-compressed
// JSON lines, optionally sealed with AES-256-GCM (the header is its additional data).
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { compressSync, uncompressSync } from 'lz4-napi';

const MAGIC = 0x45414331; // "EAC1"
const HEADER = 29;
const ENCRYPTED = 1;
const IV = 12;
const TAG = 16;

export interface ChunkHeader {
  encrypted: boolean;
  count: number;
  firstSeq: number;
  lastSeq: number;
}

export class CorruptChunk extends Error {}

export function encodeChunk(lines: string, h: Omit<ChunkHeader, 'encrypted'>, key?: Buffer): Buffer {
  const header = Buffer.alloc(HEADER);
  header.writeUInt32BE(MAGIC, 0);
  header.writeUInt8(key ? ENCRYPTED : 0, 4);
  header.writeUInt32BE(h.count, 5);
  header.writeBigUInt64BE(BigInt(h.firstSeq), 9);
  header.writeBigUInt64BE(BigInt(h.lastSeq), 17);
  let body = compressSync(Buffer.from(lines));
  if (key) body = seal(body, key, header.subarray(0, 25));
  header.writeUInt32BE(crc32(body, crc32(header.subarray(0, 25))), 25);
  return Buffer.concat([header, body]);
}

/** Header fields, after checking magic and CRC; throws CorruptChunk. Cheap: no decompression. */
export function verifyChunk(value: Uint8Array): ChunkHeader {
  const buf = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (buf.length < HEADER || buf.readUInt32BE(0) !== MAGIC) throw new CorruptChunk('bad chunk header');
  if (crc32(buf.subarray(HEADER), crc32(buf.subarray(0, 25))) !== buf.readUInt32BE(25)) throw new CorruptChunk('checksum mismatch');
  const header = {
    encrypted: (buf.readUInt8(4) & ENCRYPTED) !== 0,
    count: buf.readUInt32BE(5),
    firstSeq: Number(buf.readBigUInt64BE(9)),
    lastSeq: Number(buf.readBigUInt64BE(17)),
  };
  if (header.lastSeq - header.firstSeq + 1 !== header.count) throw new CorruptChunk('inconsistent seq range');
  return header;
}

/** The readings of a chunk whose header verifyChunk returned: its JSON lines joined by '\n'; throws CorruptChunk. */
export function chunkBody(value: Uint8Array, header: ChunkHeader, key?: Buffer): Buffer {
  const buf = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  let body = buf.subarray(HEADER);
  if (header.encrypted) {
    if (!key) throw new CorruptChunk('chunk is encrypted and no key is configured');
    body = open(body, key, buf.subarray(0, 25));
  }
  try {
    return uncompressSync(body);
  } catch (err) {
    throw new CorruptChunk(`cannot decompress: ${(err as Error).message}`);
  }
}

/** The readings of a chunk whose header verifyChunk returned, as JSON lines; throws CorruptChunk. */
export function chunkLines(value: Uint8Array, header: ChunkHeader, key?: Buffer): string[] {
  const lines = chunkBody(value, header, key).toString().split('\n');
  if (lines.length !== header.count) throw new CorruptChunk(`holds ${lines.length} readings, header says ${header.count}`);
  return lines;
}

export function seal(plain: Buffer, key: Buffer, aad: Buffer): Buffer {
  const iv = randomBytes(IV);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(aad);
  const body = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]);
}

export function open(sealed: Buffer, key: Buffer, aad: Buffer): Buffer {
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, IV));
    decipher.setAAD(aad);
    decipher.setAuthTag(sealed.subarray(IV, IV + TAG));
    return Buffer.concat([decipher.update(sealed.subarray(IV + TAG)), decipher.final()]);
  } catch {
    throw new CorruptChunk('decryption failed (wrong key or damaged chunk)');
  }
}
