// The `ingest` section of the config: the ingest stage's own keys.
import { Type, type Static } from '@sinclair/typebox';
import { choice, MiB, strict } from '../config/keys.js';
import { SchemaDocSchema } from './schema-doc.js';

export const IngestConfigSchema = Type.Object(
  {
    schemaDir: Type.Optional(
      Type.String({ minLength: 1, description: 'directory of reading schemas (.yaml, .yml, .json); reloaded on SIGHUP' }),
    ),
    schemas: Type.Array(SchemaDocSchema, { default: [], description: 'reading schemas given inline (same format as the files)' }),
    mode: choice(['strict', 'lenient'], 'lenient', 'default for schemas that do not say: strict rejects fields the schema does not name'),
    unmatched: choice(['accept', 'raw', 'reject'], 'accept', 'topics no schema matches: accept as JSON, keep as raw bytes, or dead-letter'),
    qos0Overflow: choice(
      ['block', 'drop'],
      'block',
      'QoS 0 when the log is behind or cannot write: hold the sender like QoS 1 (TCP back-pressure, nothing lost) or drop the newest (counted)',
    ),
    limits: Type.Object(
      {
        maxDepth: Type.Integer({
          minimum: 1,
          maximum: 10000,
          default: 64,
          description: 'deepest nesting of a JSON payload (SQLite refuses past 1,000); deeper is dead-lettered unparsed',
        }),
        maxStringBytes: Type.Integer({
          minimum: 1,
          default: 65536,
          description: 'longest string (key or value) in a JSON payload, bytes as sent',
        }),
        maxKeys: Type.Integer({ minimum: 1, default: 1000, description: 'most keys in one object of a JSON payload' }),
      },
      { ...strict, default: {} },
    ),
    deadLetters: Type.Object(
      {
        maxCount: Type.Integer({ minimum: 1, default: 10000, description: 'dead letters kept (see whenFull)' }),
        maxBytes: Type.Integer({ minimum: 1024, default: 16 * MiB, description: 'bytes of dead letters kept' }),
        payloadCapBytes: Type.Integer({ minimum: 0, default: 4096, description: 'bytes of a refused payload kept in its dead letter' }),
        whenFull: Type.Union([Type.Literal('hold'), Type.Literal('dropOldest')], {
          default: 'hold',
          description:
            'at maxCount or maxBytes: hold = a new refused reading waits for room, unacknowledged, its sender held (QoS 0 too, unless buffer.qos0Overflow is drop), until dead letters are replayed or purged; dropOldest = the oldest go (counted). Either way an alert fires and /health/ready says so',
        }),
      },
      { ...strict, default: {} },
    ),
  },
  { ...strict, default: {} },
);

export type IngestConfig = Static<typeof IngestConfigSchema>;
