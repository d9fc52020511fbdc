import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3-multiple-ciphers';
import { afterEach, describe, expect, it } from 'vitest';
import { CACHE_KIB, openKeyed } from '../../agent/consume/db/sqlite-open.js';
import { cleanup, tempDir } from '../helpers/agent.js';

describe('openKeyed', () => {
  let dir: string;
  afterEach(() => cleanup(dir));

  it("bounds each connection's page cache, plain, encrypted and encrypted in place", () => {
    dir = tempDir();
    const cacheOf = (db: Database.Database) => db.pragma('cache_size', { simple: true });
    // The control: the addon's own default is far larger (16 MB), so the pragma is what bounds it.
    const bare = new Database(join(dir, 'bare.db'));
    expect(cacheOf(bare)).toBeLessThan(-4 * CACHE_KIB);
    bare.close();

    const plain = openKeyed(join(dir, 'plain.db'), undefined);
    expect(cacheOf(plain)).toBe(-CACHE_KIB);
    plain.exec('CREATE TABLE t (x)');
    plain.close();

    const key = randomBytes(32);
    const encrypted = openKeyed(join(dir, 'encrypted.db'), key);
    expect(cacheOf(encrypted)).toBe(-CACHE_KIB);
    encrypted.close();

    const rekeyed = openKeyed(join(dir, 'plain.db'), key); // written before encryption: encrypted in place
    expect(cacheOf(rekeyed)).toBe(-CACHE_KIB);
    expect(rekeyed.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all()).toEqual([{ name: 't' }]);
    rekeyed.close();

    const reader = openKeyed(join(dir, 'encrypted.db'), key, true);
    expect(cacheOf(reader)).toBe(-CACHE_KIB);
    reader.close();
  });
});
