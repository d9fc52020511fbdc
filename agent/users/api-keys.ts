// API keys for machines: random, shown once, kept as SHA-256 hashes (a key has 192 random bits,
// so a fast hash is enough, as for GitHub's tokens), listable by name and revocable.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import { JsonFile } from './json-file.js';
import { USERNAME_PATTERN } from './store.js';
import { WEB_ROLES, type WebRole } from './roles.js';

interface KeyRecord {
  name: string;
  role: WebRole;
  /** SHA-256 of the whole key, hex. */
  hash: string;
  created: string;
}

interface KeysFile {
  version: 1;
  keys: Record<string, KeyRecord>;
}

export interface ApiKeyInfo {
  id: string;
  name: string;
  role: WebRole;
  created: string;
}

/** eak_<id>_<secret>: the id finds the record, the whole key is checked against its hash. */
const KEY_PATTERN = /^eak_([0-9a-f]{12})_[A-Za-z0-9_-]{32}$/;

export const looksLikeApiKey = (s: string) => s.startsWith('eak_');

const sha256 = (s: string) => createHash('sha256').update(s).digest();

export const apiKeysPath = (dataDir: string) => join(dataDir, 'api-keys.json');

export class ApiKeyStore {
  private readonly file: JsonFile<KeysFile>;

  constructor(readonly path: string) {
    this.file = new JsonFile(path, () => ({ version: 1, keys: {} }));
  }

  /** A new key; the only time its secret is seen. */
  create(name: string, role: WebRole): ApiKeyInfo & { key: string } {
    if (!USERNAME_PATTERN.test(name)) throw new Error(`invalid key name ${JSON.stringify(name)}: use 1-64 of A-Z a-z 0-9 . _ @ -`);
    if (!WEB_ROLES.includes(role)) throw new Error(`invalid role ${JSON.stringify(role)}: one of ${WEB_ROLES.join(', ')}`);
    const data = this.file.read();
    if (Object.values(data.keys).some((k) => k.name === name)) throw new Error(`an API key named ${name} exists; revoke it first`);
    const id = randomBytes(6).toString('hex');
    const key = `eak_${id}_${randomBytes(24).toString('base64url')}`;
    const record: KeyRecord = { name, role, hash: sha256(key).toString('hex'), created: new Date().toISOString() };
    this.file.write({ version: 1, keys: { ...data.keys, [id]: record } });
    return { id, name, role, created: record.created, key };
  }

  list(): ApiKeyInfo[] {
    return Object.entries(this.file.read().keys).map(([id, k]) => ({ id, name: k.name, role: k.role, created: k.created }));
  }

  /** Revoke by id or name; false if there is no such key. */
  revoke(idOrName: string): boolean {
    const data = this.file.read();
    const id = data.keys[idOrName] ? idOrName : Object.keys(data.keys).find((k) => data.keys[k].name === idOrName);
    if (!id) return false;
    const keys = { ...data.keys };
    delete keys[id];
    this.file.write({ version: 1, keys });
    return true;
  }

  /** The key's record if the key is valid. */
  verify(key: string): ApiKeyInfo | null {
    const m = KEY_PATTERN.exec(key);
    if (!m) return null;
    const record = this.file.read().keys[m[1]];
    if (!record || !timingSafeEqual(sha256(key), Buffer.from(record.hash, 'hex'))) return null;
    return { id: m[1], name: record.name, role: record.role, created: record.created };
  }
}
