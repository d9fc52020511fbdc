// The log's write-ahead journal on its own: where frames go in the ring, and what it reads back.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeFrame, Journal, type JournalOp } from '../../agent/log/journal.js';
import { cleanup, tempDir } from '../helpers/agent.js';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach(cleanup));

const SIZE = 64 * 1024;
const put = (key: string, bytes: number): JournalOp => ({ type: 'put', key, value: new Uint8Array(bytes).fill(7) });

describe('journal', () => {
  it('starts each frame on a page, so a sync sends the card the pages of one frame only; reads back every frame', async () => {
    const path = join(tempDir(), 'journal');
    dirs.push(path.slice(0, -'/journal'.length));
    const { journal } = await Journal.open(path, SIZE);
    const sizes = [1000, 5000, 10, 4096 - 20 - 7 - 1]; // the last fills its page to the byte
    for (const [i, bytes] of sizes.entries()) await journal.write(encodeFrame(i + 1, [put(`k${i}`, bytes)]), true);
    await journal.close();
    const file = readFileSync(path);
    const magicAt = [...Array(SIZE / 4096).keys()].map((p) => p * 4096).filter((at) => file.readUInt32BE(at) === 0x45414a32);
    expect(magicAt).toEqual([0, 4096, 3 * 4096, 4 * 4096]); // the 5,000-byte frame takes two pages
    const { journal: again, frames } = await Journal.open(path, SIZE);
    await again.close();
    expect(frames.map((f) => [f.number, (f.ops[0] as { value: Uint8Array }).value.length])).toEqual(sizes.map((b, i) => [i + 1, b]));
  });

  it('reads the frames an agent before page-aligned frames wrote, one after another (replayed after an upgrade)', async () => {
    const path = join(tempDir(), 'journal');
    dirs.push(path.slice(0, -'/journal'.length));
    // EAJ1 frames as they were written: packed, the same header and CRC with the old magic.
    const packed = (number: number, ops: JournalOp[]) => {
      const frame = encodeFrame(number, ops);
      frame.writeUInt32BE(0x45414a31, 0);
      frame.writeUInt32BE(crc32(frame.subarray(20), crc32(frame.subarray(4, 16))), 16);
      return frame;
    };
    const file = Buffer.alloc(SIZE);
    let at = 0;
    for (let n = 1; n <= 3; n++) at += packed(n, [put(`k${n}`, 300)]).copy(file, at);
    writeFileSync(path, file);
    const { journal, frames } = await Journal.open(path, SIZE);
    await journal.close();
    expect(frames.map((f) => f.number)).toEqual([1, 2, 3]);
  });
});
