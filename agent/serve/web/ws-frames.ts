// WebSocket text frames made once and written to many clients. A server's frames are not masked and
// the agent's /ws negotiates no extension (no compression), so a frame is the same bytes for every
// client: a commit's readings become one buffer that each live client is given, as Go's
// websocket.PreparedMessage does, instead of a message framed again for each client.

/** RFC 6455 5.2: FIN and the text opcode. */
const FIN_TEXT = 0x81;

function headerBytes(size: number): number {
  return size < 126 ? 2 : size < 65536 ? 4 : 10;
}

function writeHeader(out: Buffer, at: number, size: number): number {
  out[at] = FIN_TEXT;
  if (size < 126) {
    out[at + 1] = size;
    return at + 2;
  }
  if (size < 65536) {
    out[at + 1] = 126;
    out.writeUInt16BE(size, at + 2);
    return at + 4;
  }
  out[at + 1] = 127;
  out.writeBigUInt64BE(BigInt(size), at + 2);
  return at + 10;
}

/** One text frame for each of `texts`, each `prefix + text + suffix`, in one buffer. */
export function textFrames(texts: readonly string[], prefix = '', suffix = ''): Buffer {
  const around = Buffer.byteLength(prefix) + Buffer.byteLength(suffix);
  const sizes = texts.map((t) => around + Buffer.byteLength(t));
  const out = Buffer.allocUnsafe(sizes.reduce((n, size) => n + headerBytes(size) + size, 0));
  let at = 0;
  texts.forEach((text, i) => {
    at = writeHeader(out, at, sizes[i]);
    at += out.write(prefix, at);
    at += out.write(text, at);
    at += out.write(suffix, at);
  });
  return out;
}
