// Opening an SQLite database of the agent (the store, the rollups), encrypted at rest when a key is given.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3-multiple-ciphers';

export class StoreKeyError extends Error {}

/** SQLCipher 4's format (so the sqlcipher tool opens it too), with a raw 256-bit key. */
/**
 * The store's and the rollups' rollback journal: PERSIST keeps its size and blocks between
 * transactions, so its syncs change no metadata and cost ext4's journal nothing (TRUNCATE cost two
 * of a transaction's three ext4 journal commits); at most this much of it is kept.
 */
export const JOURNAL_MODE = 'PERSIST';
export const JOURNAL_SIZE_LIMIT = 4 * 1024 * 1024;
/**
 * Each connection's page cache, KiB. better-sqlite3 builds SQLite with 16 MB: under a steady load
 * the store and the rollups filled 15 MB of the agent's memory with pages the kernel's page cache
 * holds anyway. Inserts touch a few pages at the tables' ends; reads stream.
 */
export const CACHE_KIB = 1024;

/** Once the key is known to be right: a pragma reads the header, and a wrong key fails it. */
function bounded(db: Database.Database): Database.Database {
  db.pragma(`cache_size = -${CACHE_KIB}`);
  return db;
}

function useKey(db: Database.Database, key: Buffer, pragma: 'key' | 'rekey'): void {
  db.pragma("cipher = 'sqlcipher'");
  db.pragma('legacy = 4');
  db.pragma(`${pragma} = "x'${key.toString('hex')}'"`);
}

const readable = (db: Database.Database) => {
  try {
    db.prepare('SELECT count(*) FROM sqlite_master').get();
    return true;
  } catch (err) {
    if ((err as { code?: string }).code !== 'SQLITE_NOTADB') throw err;
    return false;
  }
};

/**
 * The database, encrypted with `key` when one is given. A store written before encryption was
 * configured is encrypted in place; a wrong or missing key stops start-up with a clear error.
 */
export function openKeyed(path: string, key: Buffer | undefined, readonly = false): Database.Database {
  if (!readonly) mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path, { readonly, fileMustExist: readonly });
  if (key) useKey(db, key, 'key');
  if (readable(db)) return bounded(db);
  db.close();
  if (readonly)
    throw new StoreKeyError(
      `${path} cannot be read: ${key ? 'it is encrypted with another key, or not encrypted' : 'it is encrypted: set buffer.encryption.keyFile to its key'}`,
    );
  if (!key) throw new StoreKeyError(`${path} is encrypted: set buffer.encryption.keyFile to its key`);
  const plain = new Database(path);
  if (!readable(plain)) {
    plain.close();
    throw new StoreKeyError(`${path} is encrypted with another key than buffer.encryption.keyFile holds`);
  }
  plain.pragma('journal_mode = TRUNCATE'); // rekey cannot work on a WAL database
  useKey(plain, key, 'rekey');
  return bounded(plain);
}
