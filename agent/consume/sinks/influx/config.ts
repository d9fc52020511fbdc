import { Type, type Static } from '@sinclair/typebox';
import { secret } from '../../../config/keys.js';
import { sinkSchema } from '../sink-config.js';

export const InfluxConfigSchema = sinkSchema(
  'influx',
  {
    url: Type.String({ pattern: '^https?://', description: 'http(s)://host:8086 (a path prefix is kept)' }),
    version: Type.Union([Type.Literal(1), Type.Literal(2)], {
      default: 1,
      description: '1: /write with database and user/password; 2: /api/v2/write with org, bucket and token (InfluxDB 2/3, VictoriaMetrics)',
    }),
    database: Type.Optional(Type.String({ minLength: 1, description: 'version 1: database' })),
    retentionPolicy: Type.Optional(Type.String({ minLength: 1, description: 'version 1: retention policy' })),
    username: Type.Optional(Type.String({ minLength: 1, description: 'version 1: user' })),
    ...secret('password', 'version 1: password'),
    org: Type.Optional(Type.String({ minLength: 1, description: 'version 2: organisation' })),
    bucket: Type.Optional(Type.String({ minLength: 1, description: 'version 2: bucket' })),
    ...secret('token', 'version 2: API token'),
    ca: Type.Optional(Type.String({ minLength: 1, description: 'PEM CA bundle for https' })),
    measurement: Type.String({
      minLength: 1,
      default: 'mqtt',
      description: 'measurement of readings without a schema (with one: its measurement)',
    }),
    agentTag: Type.String({ default: 'agent', description: 'tag holding the agent id; empty = none' }),
    topicTag: Type.String({ default: 'topic', description: 'tag holding the MQTT topic; empty = none' }),
    requests: Type.Integer({
      minimum: 1,
      maximum: 8,
      default: 3,
      description:
        'batches on the wire at once: the server parses one while the next arrives (points are idempotent and need no order; the cursor still moves in order)',
    }),
    gzipLevel: Type.Integer({
      minimum: 0,
      maximum: 9,
      default: 1,
      description: 'gzip level of request bodies (1 = fastest, 9 = smallest); 0 = uncompressed',
    }),
  },
  "InfluxDB line protocol over HTTP (v1 or v2 API), gzip bodies, nanosecond timestamps (the millisecond, then the reading's sequence)",
  {
    allOf: [
      { if: { properties: { version: { const: 1 } } }, then: { required: ['database'] } },
      { if: { properties: { version: { const: 2 } }, required: ['version'] }, then: { required: ['bucket'] } },
    ],
  },
);

export type InfluxConfig = Static<typeof InfluxConfigSchema>;
