// The `buffer` section of the config: the durable log's own keys.
import { Type, type Static } from '@sinclair/typebox';
import { MiB, strict } from '../config/keys.js';

export const BufferConfigSchema = Type.Object(
  {
    maxDelayMs: Type.Integer({ minimum: 0, maximum: 1000, default: 2, description: 'group commit: longest a reading waits before its batch is written (more arrive during each fsync)' }),
    maxRecords: Type.Integer({ minimum: 1, maximum: 100000, default: 1000, description: 'group commit: most readings per chunk' }),
    maxPendingBytes: Type.Integer({ minimum: 1024, default: 4 * MiB, description: 'bytes awaiting commit beyond which publishers are read only as their messages are committed (and QoS 0 overflow applies)' }),
    encryption: Type.Object(
      { keyFile: Type.Optional(Type.String({ minLength: 1, description: 'AES-256-GCM key (32 bytes raw, 64 hex or base64); chunks are encrypted when set' })) },
      { ...strict, default: {} },
    ),
  },
  { ...strict, default: {} },
);

export type BufferConfig = Static<typeof BufferConfigSchema>;
