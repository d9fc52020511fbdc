// The `web` section of the config: listeners, authentication, limits, CORS and metrics.
import { Type, type Static } from '@sinclair/typebox';
import { Duration, MiB, serverTls, strict } from '../../config/keys.js';

const port = (def: number, description: string) =>
  Type.Integer({ minimum: 0, maximum: 65535, default: def, description: `${description}; 0 = any free port` });
const host = () => Type.String({ minLength: 1, default: '0.0.0.0', description: 'address to bind' });

export const WebConfigSchema = Type.Object(
  {
    http: Type.Object(
      { enabled: Type.Boolean({ default: true, description: 'serve HTTP' }), host: host(), port: port(8080, 'HTTP port') },
      { ...strict, default: {} },
    ),
    https: Type.Object(
      { host: host(), port: port(8443, 'HTTPS port (also MQTT over secure WebSocket); enabled when cert and key are set'), ...serverTls },
      { ...strict, default: {} },
    ),
    auth: Type.Object(
      {
        basic: Type.Boolean({
          default: true,
          description:
            "accept HTTP Basic with a user's password or an API key (for Prometheus and curl); false: only tokens, keys and the login cookie",
        }),
        tokenTtl: Duration('lifetime of an access token (JWT) from /api/auth/login', '15m'),
        refreshTtl: Duration('lifetime of a login session: /api/auth/refresh gives new access tokens until then, or until logout', '7d'),
        initialAdminFile: Type.Optional(
          Type.String({
            minLength: 1,
            description: 'where the first start writes the generated admin password (mode 0600); default <dataDir>/initial-admin-password',
          }),
        ),
      },
      { ...strict, default: {} },
    ),
    allowedHosts: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      description:
        "names clients reach the agent by (the Host header) besides the machine's host name, <host name>.local, localhost and its addresses; *.example.com for subdomains, * for any. Others get 403: a DNS-rebinding page cannot reach the API or MQTT over WebSocket",
    }),
    cors: Type.Object(
      {
        origins: Type.Array(Type.String({ minLength: 1 }), {
          default: [],
          description: 'browser origins (scheme://host:port) allowed to call the API from another site; empty: CORS off',
        }),
      },
      { ...strict, default: {} },
    ),
    metrics: Type.Object(
      {
        public: Type.Boolean({ default: false, description: "serve /metrics without credentials (the agent's own figures; no readings)" }),
      },
      { ...strict, default: {} },
    ),
    limits: Type.Object(
      {
        bodyBytes: Type.Integer({ minimum: 1024, maximum: 64 * MiB, default: MiB, description: 'largest request body; larger gets 413' }),
        requestTimeoutMs: Type.Integer({
          minimum: 1000,
          maximum: 600000,
          default: 30000,
          description: 'time to receive a whole request (headers and body); a slower client is cut off',
        }),
        scanReadings: Type.Integer({
          minimum: 1000,
          maximum: 100000000,
          default: 200000,
          description:
            'most stored readings one request looks at (the SQLite store): a page of /api/data or GraphQL readings that matches few ends there, with fewer readings and a next cursor to go on; an aggregate from the store over more gets 400 (narrow the range, or use a bucket the rollups keep)',
        }),
        pageRows: Type.Integer({
          minimum: 1,
          maximum: 100000,
          default: 10000,
          description: 'most readings one /api/data page may ask for',
        }),
        headersTimeoutMs: Type.Integer({
          minimum: 500,
          maximum: 600000,
          default: 5000,
          description:
            "time to receive a request's headers (at most requestTimeoutMs); a client that holds a connection with unfinished headers is cut off this soon",
        }),
        requestsPerSecond: Type.Integer({
          minimum: 1,
          maximum: 100000,
          default: 20,
          description:
            'requests of one user or API key (of one address, without valid credentials) answered a second on average, past requestBurst: more wait their turn, so a client that asks again as soon as it is answered cannot take the agent',
        }),
        requestBurst: Type.Integer({
          minimum: 1,
          maximum: 100000,
          default: 60,
          description:
            'requests of one client answered at once ahead of requestsPerSecond (a page loading, a dashboard refreshing); as many more wait their turn, beyond that 429 with Retry-After',
        }),
        maxConnections: Type.Integer({
          minimum: 1,
          maximum: 100000,
          default: 256,
          description: 'open HTTP connections per listener (the API, live streams and MQTT over WebSocket together)',
        }),
        maxConnectionsPerAddress: Type.Integer({
          minimum: 1,
          maximum: 100000,
          default: 32,
          description: 'open HTTP connections per listener from one source address: one address cannot hold what every other client needs',
        }),
        liveClients: Type.Integer({
          minimum: 1,
          maximum: 10000,
          default: 64,
          description: 'live stream clients (/ws, /api/stream and GraphQL subscriptions) at once',
        }),
        liveClientsPerUser: Type.Integer({
          minimum: 1,
          maximum: 10000,
          default: 8,
          description:
            'live stream clients of one user or API key at once: one viewer cannot take every slot (more get WebSocket close 1013, or 429 with Retry-After)',
        }),
        liveBufferBytes: Type.Integer({
          minimum: 16384,
          maximum: 64 * MiB,
          default: MiB,
          description: 'bytes a live client may leave untaken before it is closed (WebSocket code 1008, or the event stream ends)',
        }),
        exports: Type.Integer({
          minimum: 1,
          maximum: 1000,
          default: 4,
          description: 'exports (/api/export) running at once; more get 503 with Retry-After',
        }),
        exportsPerUser: Type.Integer({
          minimum: 1,
          maximum: 1000,
          default: 2,
          description: 'exports of one user or API key at once; more get 429 with Retry-After',
        }),
        graphqlRequests: Type.Integer({
          minimum: 1,
          maximum: 1000,
          default: 8,
          description: 'GraphQL requests (queries and mutations over HTTP) running at once; more get 503 with Retry-After',
        }),
        graphqlRequestsPerUser: Type.Integer({
          minimum: 1,
          maximum: 1000,
          default: 4,
          description: 'GraphQL requests of one user or API key at once; more get 429 with Retry-After',
        }),
        graphqlDepth: Type.Integer({ minimum: 2, maximum: 64, default: 8, description: 'deepest GraphQL query' }),
        graphqlCost: Type.Integer({
          minimum: 10,
          maximum: 1000000,
          default: 2000,
          description:
            'costliest GraphQL query: 1 a field; a list times its limit / 100; a field that may scan the store (readings with conditions or a topic pattern, an aggregate of a width the rollups do not keep) 1 per 1,000 of web.limits.scanReadings; each alias counts',
        }),
        heartbeatSec: Type.Integer({
          minimum: 1,
          maximum: 3600,
          default: 15,
          description: 'live streams send a heartbeat this often; a WebSocket client that answers no ping in two is dropped',
        }),
      },
      { ...strict, default: {} },
    ),
  },
  { ...strict, default: {} },
);

export type WebConfig = Static<typeof WebConfigSchema>;
