// The one config schema: TypeScript types, validation, defaults and docs all come from here.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { choice, secret } from './keys.js';
import { SinksSchema } from '../../sync/config.js';
import { SchemaDocSchema } from '../ingest/schema-doc.js';

const strict = { additionalProperties: false } as const;

const port = (def: number, description: string) =>
  Type.Integer({ minimum: 0, maximum: 65535, default: def, description: `${description}; 0 = any free port` });

const host = (description = 'address to bind') => Type.String({ minLength: 1, default: '0.0.0.0', description });

const serverTls = {
  cert: Type.Optional(Type.String({ minLength: 1, description: 'PEM certificate chain file' })),
  key: Type.Optional(Type.String({ minLength: 1, description: 'PEM private key file' })),
  ...secret('passphrase', 'passphrase of the private key'),
};

const topicPatterns = (description: string) =>
  Type.Array(Type.String({ minLength: 1 }), { default: [], description });

const MiB = 1024 * 1024;

const Ingest = Type.Object(
  {
    schemaDir: Type.Optional(Type.String({ minLength: 1, description: 'directory of reading schemas (.yaml, .yml, .json); reloaded on SIGHUP' })),
    schemas: Type.Array(SchemaDocSchema, { default: [], description: 'reading schemas given inline (same format as the files)' }),
    mode: choice(['strict', 'lenient'], 'lenient', 'default for schemas that do not say: strict rejects fields the schema does not name'),
    unmatched: choice(['accept', 'raw', 'reject'], 'accept', 'topics no schema matches: accept as JSON, keep as raw bytes, or dead-letter'),
    qos0Overflow: choice(['block', 'drop'], 'block', 'QoS 0 when the log is behind or cannot write: hold the sender like QoS 1 (TCP back-pressure, nothing lost) or drop the newest (counted)'),
    limits: Type.Object(
      {
        maxDepth: Type.Integer({ minimum: 1, maximum: 10000, default: 64, description: 'deepest nesting of a JSON payload (SQLite refuses past 1,000); deeper is dead-lettered unparsed' }),
        maxStringBytes: Type.Integer({ minimum: 1, default: 65536, description: 'longest string (key or value) in a JSON payload, bytes as sent' }),
        maxKeys: Type.Integer({ minimum: 1, default: 1000, description: 'most keys in one object of a JSON payload' }),
      },
      { ...strict, default: {} },
    ),
    deadLetters: Type.Object(
      {
        maxCount: Type.Integer({ minimum: 1, default: 10000, description: 'dead letters kept; the oldest go first (counted)' }),
        maxBytes: Type.Integer({ minimum: 1024, default: 16 * MiB, description: 'bytes of dead letters kept' }),
        payloadCapBytes: Type.Integer({ minimum: 0, default: 4096, description: 'bytes of a refused payload kept in its dead letter' }),
      },
      { ...strict, default: {} },
    ),
  },
  { ...strict, default: {} },
);

const LogBuffer = Type.Object(
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

const Store = Type.Object(
  {
    backend: choice(['sqlite', 'files', 'none'], 'sqlite', 'local store: SQLite, JSON Lines files per topic and hour, or none'),
    path: Type.Optional(Type.String({ minLength: 1, description: 'database file or directory; default <dataDir>/store.db or <dataDir>/store' })),
    batchSize: Type.Integer({ minimum: 1, maximum: 100000, default: 10000, description: 'most readings per store transaction' }),
    gatherMs: Type.Integer({ minimum: 0, maximum: 60000, default: 1000, description: 'until batchSize readings wait, write once the first waiting one was committed this long ago (fewer, larger writes to the SD card)' }),
  },
  { ...strict, default: {} },
);

const AclRule = Type.Object(
  {
    user: Type.Optional(Type.String({ minLength: 1, description: 'applies to this user' })),
    role: Type.Optional(Type.String({ minLength: 1, description: 'applies to users holding this role' })),
    anonymous: Type.Optional(Type.Literal(true, { description: 'applies to anonymous clients' })),
    all: Type.Optional(Type.Literal(true, { description: 'applies to every client' })),
    publish: topicPatterns('topic patterns (+, #, %u = username, %c = client id) the client may publish to'),
    subscribe: topicPatterns('topic filters (+, #, %u, %c) the client may subscribe to'),
  },
  {
    ...strict,
    oneOf: [{ required: ['user'] }, { required: ['role'] }, { required: ['anonymous'] }, { required: ['all'] }],
  },
);

export const ConfigSchema = Type.Object(
  {
    agent: Type.Object(
      {
        id: Type.Optional(
          Type.String({ minLength: 1, pattern: '^[A-Za-z0-9._-]+$', description: 'agent id; defaults to the hostname' }),
        ),
        dataDir: Type.String({ minLength: 1, default: './data', description: 'directory for all agent data' }),
      },
      { ...strict, default: {} },
    ),
    log: Type.Object(
      {
        level: Type.Union(
          ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
          { default: 'info', description: 'log level' },
        ),
      },
      { ...strict, default: {} },
    ),
    broker: Type.Object(
      {
        mqtt: Type.Object(
          {
            enabled: Type.Boolean({ default: true, description: 'serve MQTT over TCP' }),
            host: host(),
            port: port(1883, 'MQTT TCP port'),
          },
          { ...strict, default: {} },
        ),
        mqtts: Type.Object(
          {
            host: host(),
            port: port(8883, 'MQTT over TLS port; the listener is enabled when cert and key are set'),
            ...serverTls,
            ca: Type.Optional(Type.String({ minLength: 1, description: 'PEM CA bundle used to verify client certificates' })),
            clientCertificates: Type.Union([Type.Literal('none'), Type.Literal('optional'), Type.Literal('required')], {
              default: 'none',
              description: 'ask clients for a certificate signed by ca',
            }),
            useIdentityAsUsername: Type.Boolean({
              default: false,
              description: 'a verified client certificate authenticates as the user named by its CN',
            }),
          },
          { ...strict, default: {} },
        ),
        ws: Type.Object(
          {
            enabled: Type.Boolean({ default: true, description: 'serve MQTT over WebSocket on the web listeners' }),
            path: Type.String({ pattern: '^/', default: '/mqtt', description: 'WebSocket path' }),
          },
          { ...strict, default: {} },
        ),
        allowAnonymous: Type.Union([Type.Literal('loopback'), Type.Boolean()], {
          default: 'loopback',
          description: 'anonymous clients: loopback = only from 127.0.0.0/8 and ::1',
        }),
        usersFile: Type.Optional(Type.String({ minLength: 1, description: 'users file; default <dataDir>/users.json' })),
        acl: Type.Array(AclRule, {
          default: [],
          description: 'access rules; empty = every authenticated client may publish and subscribe anywhere',
        }),
        sysInterval: Type.Integer({ minimum: 0, default: 10, description: 'seconds between $SYS updates; 0 = off' }),
        limits: Type.Object(
          {
            maxPayloadBytes: Type.Integer({ minimum: 1, maximum: 268435455, default: 262144, description: 'largest PUBLISH payload; larger disconnects the client' }),
            maxTopicLength: Type.Integer({ minimum: 1, maximum: 65535, default: 256, description: 'longest topic (bytes)' }),
            maxTopicLevels: Type.Integer({ minimum: 1, maximum: 100, default: 16, description: 'most topic levels' }),
            maxClients: Type.Integer({ minimum: 1, default: 1024, description: 'most connected clients; more get CONNACK 0x03' }),
            maxInflightPerClient: Type.Integer({ minimum: 1, maximum: 65535, default: 1000, description: 'QoS 1 messages a client may have awaiting PUBACK; beyond this its socket is read only as they are acknowledged' }),
            maxQueuedPerClient: Type.Integer({ minimum: 1, default: 1000, description: 'stored messages per persistent session; newer ones are dropped and counted' }),
            connectTimeoutMs: Type.Integer({ minimum: 100, default: 10000, description: 'time a new connection has to send CONNECT' }),
            drainTimeoutMs: Type.Integer({ minimum: 0, default: 30000, description: 'time a slow subscriber has to drain its socket before it is dropped' }),
          },
          { ...strict, default: {} },
        ),
      },
      { ...strict, default: {} },
    ),
    ingest: Ingest,
    buffer: LogBuffer,
    store: Store,
    sinks: SinksSchema,
    web: Type.Object(
      {
        http: Type.Object(
          { enabled: Type.Boolean({ default: true, description: 'serve HTTP' }), host: host(), port: port(8080, 'HTTP port') },
          { ...strict, default: {} },
        ),
        https: Type.Object(
          { host: host(), port: port(8443, 'HTTPS port (also MQTT over secure WebSocket); enabled when cert and key are set'), ...serverTls },
          { ...strict, default: {} },
        ),
      },
      { ...strict, default: {} },
    ),
  },
  strict,
);

export type Config = Static<typeof ConfigSchema> & { agent: { id: string } };
export type AclRuleConfig = Static<typeof AclRule>;
export type { TSchema };
