// The `store` section of the config: the local store's own keys.
import { Type, type Static } from '@sinclair/typebox';
import { choice, MiB, strict } from '../../config/keys.js';

export const StoreConfigSchema = Type.Object(
  {
    backend: choice(['sqlite', 'files', 'none'], 'sqlite', 'local store: SQLite, JSON Lines files per topic and hour, or none'),
    path: Type.Optional(
      Type.String({ minLength: 1, description: 'database file or directory; default <dataDir>/store.db or <dataDir>/store' }),
    ),
    batchSize: Type.Integer({ minimum: 1, maximum: 100000, default: 10000, description: 'most readings per store transaction' }),
    maxBatchBytes: Type.Integer({
      minimum: 65536,
      maximum: 16 * MiB,
      default: 4 * MiB,
      description: 'most bytes of the log (compressed) per store transaction; large payloads make smaller batches',
    }),
    gatherMs: Type.Integer({
      minimum: 0,
      maximum: 60000,
      default: 1000,
      description:
        'until batchSize readings wait, write once the first waiting one was committed this long ago (fewer, larger writes to the SD card)',
    }),
    maxGatherMs: Type.Integer({
      minimum: 0,
      maximum: 3600000,
      default: 300000,
      description:
        'when readings are few, the wait grows up to this, so that a transaction holds about batchSize readings (at 10 readings/s: one write every 5 minutes rather than every second; the log holds the readings meanwhile, and queries read them from it, so that a client asking often does not make the store write more)',
    }),
  },
  { ...strict, default: {} },
);

export type StoreConfig = Static<typeof StoreConfigSchema>;
