import { hkdfSync } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** An AES-256 key from a file: 32 raw bytes, 64 hex digits, or base64 of 32 bytes. */
export function readKeyFile(path: string): Buffer {
  const raw = readFileSync(path);
  if (raw.length === 32) return raw;
  const text = raw.toString('utf8').trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  const b64 = Buffer.from(text, 'base64');
  if (b64.length === 32 && /^[A-Za-z0-9+/=_-]+$/.test(text)) return b64;
  throw new Error(`buffer.encryption.keyFile ${path}: not a 256-bit key (want 32 raw bytes, 64 hex digits or base64 of 32 bytes)`);
}

/** A key of its own for each use of the one configured key (the store, the rollups, the broker's sessions), so none is reused across formats. */
export function subkey(key: Buffer, purpose: 'store' | 'rollups' | 'broker'): Buffer {
  return Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), `edge-agent ${purpose}`, 32));
}
