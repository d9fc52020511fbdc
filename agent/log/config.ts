// The `buffer` section of the config: the durable log's own keys.
import { Type, type Static } from '@sinclair/typebox';
import { MiB, strict } from '../config/keys.js';

export const BufferConfigSchema = Type.Object(
  {
    maxDelayMs: Type.Integer({
      minimum: 0,
      maximum: 1000,
      default: 200,
      description:
        'group commit window, a PUBACK latency budget: the readings of this window share one sync (fewer writes to the SD card); waiting readings past commitBytes, or arriving while a commit is on its way, commit without waiting',
    }),
    commitBytes: Type.Integer({
      minimum: 1024,
      maximum: 4 * MiB,
      default: 6144,
      description:
        'waiting QoS 1 readings past this many bytes (before compression) commit without waiting for maxDelayMs: PUBACKs stay fast at high rates (30 ms at 1,000 readings/s), each sync costing the SD card at least a 4 kB page (8192: 40 ms and a quarter fewer syncs at that rate); raise it with maxDelayMs to trade latency for wear',
    }),
    syncIntervalMs: Type.Integer({
      minimum: 0,
      maximum: 600000,
      default: 20000,
      description:
        'readings never promised durability (QoS 0) are committed and synced at least this often (sooner beside QoS 1 readings, or once 256 kB wait): a crash or power cut loses at most this much of them; live views see them as they come',
    }),
    maxRecords: Type.Integer({ minimum: 1, maximum: 100000, default: 1000, description: 'group commit: most readings per chunk' }),
    maxPendingBytes: Type.Integer({
      minimum: 1024,
      default: MiB,
      description:
        'bytes awaiting commit beyond which publishers are read only as their messages are committed (and QoS 0 overflow applies); more lets a QoS 0 flood in faster, at a cost in memory (4 MiB: about 5 % more readings a second and 12-15 MB more at the peak)',
    }),
    encryption: Type.Object(
      {
        keyFile: Type.Optional(
          Type.String({ minLength: 1, description: 'AES-256-GCM key (32 bytes raw, 64 hex or base64); chunks are encrypted when set' }),
        ),
      },
      { ...strict, default: {} },
    ),
  },
  { ...strict, default: {} },
);

export type BufferConfig = Static<typeof BufferConfigSchema>;
