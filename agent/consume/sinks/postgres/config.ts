import { Type, type Static } from '@sinclair/typebox';
import { literals, secret } from '../../../config/keys.js';
import { sinkSchema } from '../sink-config.js';

const identifier = (def: string, description: string) =>
  Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$', maxLength: 63, default: def, description });

const Column = Type.Object(
  {
    field: Type.String({ minLength: 1, description: 'payload field (a.b for nested fields)' }),
    column: Type.Optional(
      Type.String({
        pattern: '^[A-Za-z_][A-Za-z0-9_]*$',
        maxLength: 63,
        description: 'column name; default: the field with dots as underscores',
      }),
    ),
    type: Type.Optional(
      literals(['float', 'integer', 'boolean', 'text', 'timestamp', 'jsonb'], {
        description: 'column type; default: the type the reading schemas give the field, else float',
      }),
    ),
  },
  { additionalProperties: false },
);

export const PostgresConfigSchema = sinkSchema(
  'postgres',
  {
    url: Type.Optional(
      Type.String({ pattern: '^postgres(ql)?://', description: 'postgres://user@host:port/database (fields below override its parts)' }),
    ),
    host: Type.Optional(Type.String({ minLength: 1, description: 'server host or unix socket directory' })),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'server port (default 5432)' })),
    database: Type.Optional(Type.String({ minLength: 1, description: 'database name' })),
    user: Type.Optional(Type.String({ minLength: 1, description: 'user name' })),
    ...secret('password', 'password (also $PGPASSWORD)'),
    sslmode: Type.Optional(
      literals(['disable', 'require', 'verify-ca', 'verify-full'], {
        description: "TLS; default: the URL's ?sslmode=, else disable for a loopback host and verify-full for any other",
      }),
    ),
    ca: Type.Optional(Type.String({ minLength: 1, description: 'PEM CA bundle that signed the server certificate' })),
    cert: Type.Optional(Type.String({ minLength: 1, description: 'PEM client certificate' })),
    key: Type.Optional(Type.String({ minLength: 1, description: 'PEM client key' })),
    schema: identifier('public', 'schema of the table'),
    table: identifier('telemetry', 'table; created if missing, primary key (agent_id, seq)'),
    columns: Type.Array(Column, { default: [], description: 'typed columns filled from payload fields, beside the jsonb payload' }),
    hypertable: Type.Boolean({ default: true, description: 'make a new table a hypertable when the TimescaleDB extension is installed' }),
  },
  'PostgreSQL or TimescaleDB: COPY, then INSERT ... ON CONFLICT DO NOTHING on (agent_id, seq)',
);

export type PostgresConfig = Static<typeof PostgresConfigSchema>;
