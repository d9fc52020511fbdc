// The one config schema, assembled from the stages' own sections (each stage owns its keys): the
// TypeScript types, validation, defaults and docs all come from here. It sits above the stages;
// the loader it uses (./load.ts) knows no schema of its own.
import { BufferConfigSchema } from './log/config.js';
import { accessSync, constants } from 'node:fs';
import { hostname } from 'node:os';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { IngestConfigSchema } from './ingest/config.js';
import { filesystemSize, markOrderProblems, RetentionConfigSchema } from './retention/config.js';
import { RollupConfigSchema } from './consume/rollups/config.js';
import { StoreConfigSchema } from './consume/store/config.js';
import { SinksSchema } from './consume/sinks/config.js';
import { Duration, serverTls, strict } from './config/keys.js';
import { WebConfigSchema } from './serve/web/config.js';
import { HealthConfigSchema } from './health/config.js';
import { GpioConfigSchema, gpioProblems } from './gpio/config.js';
import { loadWith, redactWith, type LoadedConfig } from './config/load.js';
import { tlsFileProblems } from './config/tls-files.js';

const port = (def: number, description: string) =>
  Type.Integer({ minimum: 0, maximum: 65535, default: def, description: `${description}; 0 = any free port` });

const host = (description = 'address to bind') => Type.String({ minLength: 1, default: '0.0.0.0', description });

const topicPatterns = (description: string) => Type.Array(Type.String({ minLength: 1 }), { default: [], description });

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
        id: Type.Optional(Type.String({ minLength: 1, pattern: '^[A-Za-z0-9._-]+$', description: 'agent id; defaults to the hostname' })),
        dataDir: Type.String({ minLength: 1, default: './data', description: 'directory for all agent data' }),
        pageOutAfter: Type.Union([Duration('a duration after ready'), Type.Literal('off')], {
          default: '5s',
          description:
            "this long after ready, hand back to the kernel the pages of the agent's own files (Node, its code) that only starting used: RSS about 40 MB lower, also under a flood of sensors reconnecting as the agent starts; what is used again comes back from the page cache; then every minute the pages of the log's table files that LevelDB's reads left mapped, and malloc's free pages (malloc_trim); off keeps them all",
        }),
        heap: Type.Union([Type.Literal('small'), Type.Literal('fast')], {
          default: 'small',
          description:
            "small: V8 grows its heaps (the main thread's and the store's) little past what the last collection kept (V8's --optimize-for-size): 8-17 MB less at 2,000 readings/s and at the peak of a flood, for more CPU collecting garbage (a QoS 0 flood about 10 % slower); fast: V8's own growth, for the highest rates on a machine with memory to spare",
        }),
      },
      { ...strict, default: {} },
    ),
    log: Type.Object(
      {
        level: Type.Union(
          ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
          { default: 'info', description: 'log level' },
        ),
        format: Type.Union([Type.Literal('auto'), Type.Literal('pretty'), Type.Literal('json')], {
          default: 'auto',
          description:
            'json: one JSON object a line (for journald and log shippers); pretty: a readable line with colours; auto: pretty on a terminal, else json',
        }),
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
            certificateOnlyUsers: Type.Boolean({
              default: false,
              description:
                'with useIdentityAsUsername: a certificate whose CN names no user in the users file still logs in (no roles); else it is refused',
            }),
          },
          { ...strict, default: {} },
        ),
        ws: Type.Object(
          {
            enabled: Type.Boolean({ default: true, description: 'serve MQTT over WebSocket on the web listeners' }),
            path: Type.String({ pattern: '^/', default: '/mqtt', description: 'WebSocket path' }),
            maxConnections: Type.Integer({
              minimum: 1,
              maximum: 100000,
              default: 128,
              description:
                'MQTT over WebSocket connections open at once per web listener; more get 503 with Retry-After. With web.limits.liveClients (64) it leaves the web API its share of web.limits.maxConnections (256)',
            }),
            allowedOrigins: Type.Array(Type.String({ minLength: 1 }), {
              default: [],
              description:
                'browser origins (scheme://host:port) besides the agent\'s own that may open MQTT over WebSocket; "*" for any. Requests without an Origin (not browsers) may',
            }),
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
        persistentSessionExpiry: Duration(
          "a persistent session (clean=false) whose client stays away this long ends: its subscriptions and queued messages go, and its client id is free for others (Mosquitto's persistent_client_expiration)",
          '30d',
        ),
        loginThrottle: Type.Object(
          {
            failuresBeforeDelay: Type.Integer({
              minimum: 1,
              default: 3,
              description:
                'failed logins for a user name at an address before each further attempt waits, 0.25 s doubling up to 8 s; for a user name from all addresses, before attempts from addresses it never logged in from take turns with that delay',
            }),
            failuresBeforeBan: Type.Integer({
              minimum: 1,
              default: 10,
              description:
                'failed logins for a user name at one address that ban that name there for banMs (the user name is never banned everywhere); logged once per ban',
            }),
            failuresBeforeAddressBan: Type.Integer({
              minimum: 1,
              default: 30,
              description: 'failed logins from one address, whatever the user names or API keys, that ban the address for banMs',
            }),
            banMs: Type.Integer({
              minimum: 1000,
              default: 600000,
              description: 'how long a ban lasts; a streak of failures older than this is forgotten',
            }),
            hashConcurrency: Type.Integer({
              minimum: 1,
              maximum: 16,
              default: 1,
              description:
                'password checks (scrypt, ~50 ms of a core each) run at once; one more is kept for logins from addresses a login succeeded from, so that a flood of guesses does not make known sensors wait',
            }),
          },
          { ...strict, default: {} },
        ),
        limits: Type.Object(
          {
            maxPayloadBytes: Type.Integer({
              minimum: 1,
              maximum: 268435455,
              default: 262144,
              description: 'largest PUBLISH payload; larger disconnects the client',
            }),
            maxTopicLength: Type.Integer({ minimum: 1, maximum: 65535, default: 256, description: 'longest topic (bytes)' }),
            maxTopicLevels: Type.Integer({ minimum: 1, maximum: 100, default: 16, description: 'most topic levels' }),
            maxClients: Type.Integer({ minimum: 1, default: 1024, description: 'most connected clients; more get CONNACK 0x03' }),
            maxInflightPerClient: Type.Integer({
              minimum: 1,
              maximum: 65535,
              default: 1000,
              description: 'QoS 1 messages a client may have awaiting PUBACK; beyond this its socket is read only as they are acknowledged',
            }),
            maxQueuedPerClient: Type.Integer({
              minimum: 1,
              default: 1000,
              description: 'stored messages per persistent session; newer ones are dropped and counted',
            }),
            connectTimeoutMs: Type.Integer({
              minimum: 100,
              default: 5000,
              description: 'time a new connection has to send its whole CONNECT',
            }),
            maxConnectBytes: Type.Integer({
              minimum: 256,
              maximum: 262144,
              default: 8192,
              description: 'largest CONNECT packet (it comes before any login)',
            }),
            maxPendingLogins: Type.Integer({
              minimum: 1,
              default: 64,
              description:
                'connections that have not logged in yet, in all; when every one is taken, the address holding the most gives its oldest to a newcomer from an address holding fewer (a few addresses cannot shut every other out); else the newcomer is closed at once',
            }),
            maxPendingPerAddress: Type.Integer({
              minimum: 1,
              default: 8,
              description: 'connections that have not logged in yet, from one source address',
            }),
            drainTimeoutMs: Type.Integer({
              minimum: 0,
              default: 30000,
              description: 'time a slow subscriber has to drain its socket before it is dropped',
            }),
            allowControlCharacters: Type.Boolean({
              default: false,
              description: 'let control characters (U+0001-U+001F, U+007F-U+009F) into topics, topic filters, client ids and user names',
            }),
          },
          { ...strict, default: {} },
        ),
      },
      { ...strict, default: {} },
    ),
    ingest: IngestConfigSchema,
    buffer: BufferConfigSchema,
    store: StoreConfigSchema,
    rollups: RollupConfigSchema,
    retention: RetentionConfigSchema,
    sinks: SinksSchema,
    web: WebConfigSchema,
    health: HealthConfigSchema,
    gpio: GpioConfigSchema,
  },
  strict,
);

export type Config = Static<typeof ConfigSchema> & { agent: { id: string } };
export type AclRuleConfig = Static<typeof AclRule>;
export type { TSchema };

/** The agent's config from a file (--config, $EDGE_AGENT_CONFIG, the default paths) and the environment. */
export function loadConfig(explicitPath?: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig<Config> {
  const loaded = loadWith<Config>(ConfigSchema, explicitPath, env, (c) => [
    ...uniqueNames(c),
    ...tlsProblems(c),
    ...readable(c),
    ...retentionProblems(c),
    ...gpioProblems(c.gpio),
  ]);
  loaded.config.agent.id ??= hostname().replace(/[^A-Za-z0-9._-]/g, '-');
  return loaded;
}

/** Sink names key their log cursors, status and environment variables: two sinks cannot share one. */
function uniqueNames(config: Config): string[] {
  const seen = new Set<string>();
  return config.sinks.flatMap((sink, i) => {
    if (seen.has(sink.name)) return [`sinks[${i}].name: another sink is named ${sink.name}`];
    seen.add(sink.name);
    return [];
  });
}

/** TLS settings that cannot work: a certificate without its key, client certificates with no CA to check them. */
/** Store rules that keep everything, sinks taking rollup buckets that are not kept, watermarks out of order. */
function retentionProblems(config: Config): string[] {
  const { rollups, retention } = config;
  const unknown = (key: string, buckets: string[]) =>
    buckets
      .filter((b) => !rollups.buckets.includes(b))
      .map((b) => `${key}: ${b} is not one of rollups.buckets (${rollups.buckets.join(', ')})`);
  // (Retention rules naming widths that are not kept do nothing: the defaults name 1m, 5m and 1h.)
  const problems = [
    ...retention.store.flatMap((rule, i) => (rule.maxAge || rule.maxBytes ? [] : [`retention.store[${i}]: give maxAge, maxBytes or both`])),
    ...retention.rollups.flatMap((rule, i) =>
      rule.maxAge || rule.maxBytes ? [] : [`retention.rollups[${i}]: give maxAge, maxBytes or both`],
    ),
    ...config.sinks.flatMap((sink, i) =>
      !sink.rollups
        ? []
        : rollups.enabled
          ? unknown(`sinks[${i}].rollups`, sink.rollups)
          : [`sinks[${i}].rollups: rollups.enabled is false`],
    ),
  ];
  problems.push(...markOrderProblems(retention.disk, filesystemSize(config.agent.dataDir)));
  return problems;
}

function tlsProblems(config: Config): string[] {
  const sinks = config.sinks.map((sink, i) => ({
    at: `sinks[${i}]`,
    ...(sink as { cert?: string; key?: string; ca?: string; passphrase?: string }),
  }));
  const problems = tlsFileProblems([{ at: 'broker.mqtts', ...config.broker.mqtts }, { at: 'web.https', ...config.web.https }, ...sinks]);
  const m = config.broker.mqtts;
  if (!m.ca && (m.clientCertificates !== 'none' || m.useIdentityAsUsername)) {
    problems.push(
      'broker.mqtts.ca: required with broker.mqtts.clientCertificates or useIdentityAsUsername (else any certificate the system trusts would log in)',
    );
  }
  return problems;
}

/** Files the config names must be readable now, not found missing at start-up (TLS files: tls-files.ts). */
function readable(config: Config): string[] {
  const files: [string, string | undefined][] = [['buffer.encryption.keyFile', config.buffer.encryption.keyFile]];
  return files.flatMap(([key, file]) => {
    if (file === undefined) return [];
    try {
      accessSync(file, constants.R_OK);
      return [];
    } catch (err) {
      return [`${key}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`];
    }
  });
}

/** The effective config with every secret replaced by "***". */
export function redact(config: Config): Record<string, unknown> {
  return redactWith(ConfigSchema, config);
}
