// Frames made once for every live client (agent/serve/web/ws-frames.ts), read back by the ws
// library's own frame parser as a client reads a server's frames; each length form of RFC 6455
// (7-bit, 16-bit, 64-bit) at its edges, and text beyond ASCII (lengths are bytes, not characters).
import type { Writable } from 'node:stream';
import * as ws from 'ws';
import { describe, expect, it } from 'vitest';
import { textFrames } from '../../agent/serve/web/ws-frames.js';

type Receiver = Writable & { on(event: 'message', listener: (data: Buffer, isBinary: boolean) => void): Receiver };
const { Receiver } = ws as unknown as { Receiver: new (options: { isServer: boolean }) => Receiver };

async function read(frames: Buffer): Promise<{ text: string; isBinary: boolean }[]> {
  const receiver = new Receiver({ isServer: false });
  const messages: { text: string; isBinary: boolean }[] = [];
  receiver.on('message', (data, isBinary) => messages.push({ text: data.toString(), isBinary }));
  await new Promise<void>((resolve, reject) => receiver.end(frames, (err?: Error | null) => (err ? reject(err) : resolve())));
  return messages;
}

describe('textFrames', () => {
  it('frames each text with its prefix and suffix, at every length form, in order', async () => {
    const prefix = '{"r":';
    const suffix = '}';
    // Message sizes (prefix + text + suffix) of 125, 126, 65535, 65536 bytes and beyond.
    const texts = [2, 119, 120, 65529, 65530, 70000].map((n) => JSON.stringify('x'.repeat(Math.max(0, n - 2))));
    const messages = await read(textFrames(texts, prefix, suffix));
    expect(messages.map((m) => m.text)).toEqual(texts.map((t) => prefix + t + suffix));
    expect(messages.map((m) => Buffer.byteLength(m.text))).toEqual([8, 125, 126, 65535, 65536, 70006]);
    expect(messages.every((m) => !m.isBinary)).toBe(true);
  });

  it('counts bytes, not characters: text beyond ASCII, and no texts at all', async () => {
    const texts = ['"°C"', '"🌡️"', `"${'é'.repeat(70)}"`];
    expect((await read(textFrames(texts))).map((m) => m.text)).toEqual(texts);
    expect(textFrames([]).length).toBe(0);
  });
});
