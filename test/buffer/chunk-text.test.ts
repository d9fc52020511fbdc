import { describe, expect, it } from 'vitest';
import { ChunkText } from '../../agent/log/chunk-text.js';
import { CorruptChunk, encodeChunk, verifyChunk } from '../../agent/log/chunk.js';

const KEY = Buffer.alloc(32, 7);

describe('chunk text', () => {
  it('gives back each line of a chunk, with its UTF-8 length, sealed or not', () => {
    const lines = ['{"t":"a","v":1}', '{"t":"ü€","v":"😀"}', '', '{"t":"z"}'];
    for (const key of [undefined, KEY]) {
      const chunk = encodeChunk(lines.join('\n'), { count: 4, firstSeq: 11, lastSeq: 14 }, key);
      const text = ChunkText.decode(chunk, verifyChunk(chunk), key);
      expect([text.firstSeq, text.lastSeq, text.count]).toEqual([11, 14, 4]);
      expect(Array.from({ length: 4 }, (_, k) => text.line(k))).toEqual(lines);
      expect(Array.from({ length: 4 }, (_, k) => text.lineBytes(k))).toEqual(lines.map((l) => Buffer.byteLength(l)));
    }
  });

  it('refuses a chunk whose text holds more or fewer readings than its header says', () => {
    for (const [body, count] of [
      ['a\nb', 3],
      ['a\nb\nc\nd', 3],
    ] as const) {
      const chunk = encodeChunk(body, { count, firstSeq: 1, lastSeq: count }, undefined);
      expect(() => ChunkText.decode(chunk, verifyChunk(chunk))).toThrow(CorruptChunk);
    }
  });

  it('a sealed chunk without its key is refused, never read as garbage', () => {
    const chunk = encodeChunk('{"v":1}', { count: 1, firstSeq: 1, lastSeq: 1 }, KEY);
    expect(() => ChunkText.decode(chunk, verifyChunk(chunk))).toThrow(/no key/);
  });
});
