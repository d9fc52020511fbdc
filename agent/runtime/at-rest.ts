// Encryption at rest: one key file, a subkey per store.
import { open, readKeyFile, seal, subkey } from '../log/index.js';
import type { Sealer } from '../../embedded-broker/index.js';
import type { Config } from '../config-schema.js';

/** The key for encryption at rest, when configured. */
export const atRestKey = (config: Config): Buffer | undefined =>
  config.buffer.encryption.keyFile ? readKeyFile(config.buffer.encryption.keyFile) : undefined;

/** Each part's own key (the store, the rollups, the broker's sessions), derived from the one key. */
export function partKeys(config: Config): ((part: 'store' | 'rollups' | 'broker') => Buffer) | undefined {
  const key = atRestKey(config);
  return key && ((part) => subkey(key, part));
}

/** AES-256-GCM of each stored value, bound to its LevelDB key. */
export function sealer(key: Buffer): Sealer {
  return { seal: (plain, name) => seal(plain, key, Buffer.from(name)), open: (sealed, name) => open(sealed, key, Buffer.from(name)) };
}
