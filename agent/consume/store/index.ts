// The local store stage: a consumer of the durable log, with one interface over its backends.
import { join } from 'node:path';
import { FilesStore, queryFiles } from './files.js';
import { openSqliteStore } from './sqlite.js';
import type { StoreConfig } from './config.js';
import type { LocalStore } from './types.js';

export type { LocalStore, StoreQuery } from './types.js';
export { StoreTail, withTail } from './tail.js';

/** The local store's name as a consumer of the log. */
export const STORE_CONSUMER = 'store';

export type StoreBackend = Exclude<StoreConfig['backend'], 'none'>;

const backends: Record<StoreBackend, (path: string, key?: Buffer) => LocalStore | Promise<LocalStore>> = {
  sqlite: (path, key) => openSqliteStore(path, key),
  files: (dir, key) => new FilesStore({ dir, key }),
};

export function defaultStorePath(backend: StoreBackend, dataDir: string): string {
  return backend === 'sqlite' ? join(dataDir, 'store.db') : join(dataDir, 'store');
}

/** `key`: encryption at rest. */
export function openStore(backend: StoreBackend, path: string, key?: Buffer): Promise<LocalStore> {
  return Promise.resolve(backends[backend](path, key));
}

/** Read the store beside a running agent (`edge-agent export`): nothing is written, not even a repair. */
export async function openStoreReader(backend: StoreBackend, path: string, key?: Buffer): Promise<Pick<LocalStore, 'query' | 'close'>> {
  if (backend === 'sqlite') return openSqliteStore(path, key, true);
  return { query: async (q) => queryFiles(path, q, key), close: async () => {} };
}
