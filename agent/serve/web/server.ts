// The web listeners (HTTP, and HTTPS when a certificate is configured), each a Fastify instance with
// the same routes: health, the API (every route validated by its JSON schema, which also makes the
// OpenAPI document), metrics, and MQTT over WebSocket.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { dirname, join } from 'node:path';
import cookie from '@fastify/cookie';
import cors from '@fastify/cors';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import websocket from '@fastify/websocket';
import Fastify, { type FastifyInstance } from 'fastify';
import type { LoginGuard } from '../../../embedded-broker/index.js';
import type { Metrics } from '../../health/metrics.js';
import type { SystemSample } from '../../health/system.js';
import type { Readiness } from '../../health/readiness.js';
import type { Logger } from '../../lib/logger.js';
import type { ApiKeyStore } from '../../users/api-keys.js';
import type { UserStore } from '../../users/store.js';
import { lazyCompilers } from './lazy-compilers.js';
import { VERSION } from '../../lib/version.js';
import { assetPath, isSea } from '../../lib/sea.js';
import type { ApiSource } from './api.js';
import { breaksLimits } from '../../ingest/json-limits.js';
import { hostCheck, hostName, type HostCheck } from './allowed-hosts.js';
import { authenticate, authorize } from './auth/authenticate.js';
import type { Sessions } from './auth/sessions.js';
import type { WebConfig } from './config.js';
import { errorSchema, installErrorHandlers } from './errors.js';
import { registerGraphql } from './graphql.js';
import { apiKeyRoutes } from './routes/api-keys.js';
import { authRoutes } from './routes/auth.js';
import { mqttSessionRoutes } from './routes/mqtt-sessions.js';
import { dataRoutes } from './routes/data.js';
import { liveRoutes } from './routes/live.js';
import { deadLetterRoutes } from './routes/dead-letters.js';
import { exportRoutes } from './routes/export.js';
import { healthRoutes } from './routes/health.js';
import { mqttWebSocketRoute } from './routes/mqtt-ws.js';
import { Pace, paceRequests } from './pace.js';
import { Slots } from './slots.js';
import { Tally } from './tally.js';
import { opsRoutes } from './routes/ops.js';
import { pageFolder, pageRoutes } from './routes/page.js';
import { schemaRoutes } from './routes/schemas.js';
import { userRoutes } from './routes/users.js';

export interface WebOptions {
  http?: { host: string; port: number };
  https?: { host: string; port: number; cert: string; key: string; passphrase?: string };
  mqttWs?: {
    path: string;
    maxPayload: number;
    maxConnections: number;
    allowedOrigins: string[];
    handle(stream: Duplex, listener: string, remoteAddress: string): void;
  };
  config: Pick<WebConfig, 'auth' | 'cors' | 'metrics' | 'limits' | 'allowedHosts'>;
  users: UserStore;
  keys: ApiKeyStore;
  sessions: Sessions;
  guard: LoginGuard;
  readiness: Readiness;
  metrics: Metrics;
  /** The machine's latest sample (health.system). */
  system: () => SystemSample | undefined;
  api: ApiSource;
  logger: Logger;
}

export interface WebServer {
  listeners: Record<string, string>;
  close(): Promise<void>;
}

const CHANGES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * At most `max` open connections from one source address; more are closed as they come, before
 * Node's own handling of a connection (HTTP's parser and timers, TLS) is set up for them: an
 * address that connects again and again costs little.
 */
function capPerAddress(server: Server, max: number): void {
  const open = new Tally();
  const handlers = server.rawListeners('connection') as ((socket: Socket) => void)[];
  server.removeAllListeners('connection');
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? '';
    if (open.of(address) >= max) return void socket.destroy();
    open.add(address);
    socket.once('close', () => open.remove(address));
    for (const handle of handlers) handle.call(server, socket);
  });
}

/**
 * Every operation of the OpenAPI document gets an operationId (GET /api/schemas/:name ->
 * getApiSchemasByName) and a summary (its description's first clause), which client generators
 * and linters need; a route may set its own.
 */
function describeOperations(app: FastifyInstance): void {
  app.addHook('onRoute', (route) => {
    const schema = route.schema as
      { hide?: boolean; operationId?: string; summary?: string; description?: string; response?: Record<string, unknown> } | undefined;
    if (!schema || schema.hide) return;
    const method = (Array.isArray(route.method) ? route.method[0] : route.method).toLowerCase();
    schema.operationId ??= operationId(method, route.url);
    schema.summary ??= summaryOf(schema.description ?? `${method.toUpperCase()} ${route.url}`);
    // Every route refuses a foreign Host (refuseForeignHosts), public ones included.
    if (schema.response && !schema.response[403])
      schema.response[403] = { ...errorSchema, description: 'the Host header is not a name of this agent (web.allowedHosts)' };
  });
}

function operationId(method: string, url: string): string {
  const words = url
    .split(/[/_.-]+/)
    .filter(Boolean)
    .map((part) => (part.startsWith(':') ? `By ${part.slice(1)}` : part));
  return (
    method +
    words
      .map((w) =>
        w
          .split(' ')
          .map((x) => x[0].toUpperCase() + x.slice(1))
          .join(''),
      )
      .join('')
  );
}

function summaryOf(description: string): string {
  const clause = description.split(/[:;(]/)[0].trim();
  const short = clause.length > 70 ? `${clause.slice(0, 67).replace(/\s+\S*$/, '')}…` : clause;
  return short[0].toUpperCase() + short.slice(1);
}

/** Deeper bodies are refused before parsing: JSON.parse, schemas and JSON.stringify recurse. */
const MAX_BODY_DEPTH = 256;

/** Fastify's own JSON parser (prototype poisoning refused), after a depth check that does not recurse. */
function boundJsonDepth(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    const problem = breaksLimits(body as string, { maxDepth: MAX_BODY_DEPTH, maxStringBytes: Infinity, maxKeys: Infinity });
    if (problem) return done(Object.assign(new Error(`body: ${problem}`), { statusCode: 400 }), undefined);
    parse(req, body as string, done);
  });
}

function refuseForeignHosts(app: FastifyInstance, hosts: HostCheck): void {
  app.addHook('onRequest', async (req, reply) => {
    if (hosts.allows(req.headers.host)) return;
    const name = JSON.stringify(hostName(req.headers.host ?? '').slice(0, 100));
    await reply.code(403).send({
      error: 'Forbidden',
      message: `Host ${name} is not a name of this agent: add it to web.allowedHosts if clients reach the agent by it`,
    });
  });
}

/** What every listener shares: a client's pace and the slots are the agent's, not each listener's. */
interface Shared {
  pace: Pace;
  exports: Slots;
  graphql: Slots;
}

function shareLimits(limits: WebConfig['limits']): Shared {
  return {
    pace: new Pace(limits.requestsPerSecond, limits.requestBurst),
    exports: new Slots('exports', { inAll: limits.exports, perOwner: limits.exportsPerUser }),
    graphql: new Slots('GraphQL requests', { inAll: limits.graphqlRequests, perOwner: limits.graphqlRequestsPerUser }),
  };
}

async function build(name: 'http' | 'https', opts: WebOptions, shared: Shared): Promise<FastifyInstance> {
  const { limits } = opts.config;
  // Node checks request deadlines this often (30 s by default): often enough to enforce requestTimeoutMs.
  const checking = { connectionsCheckingInterval: Math.min(1000, limits.requestTimeoutMs) };
  const https =
    name === 'https' && opts.https
      ? { cert: readFileSync(opts.https.cert), key: readFileSync(opts.https.key), passphrase: opts.https.passphrase, ...checking }
      : null;
  const logger = opts.logger.child({ listener: name });
  const app = Fastify({
    // Not a line per request (Fastify logs them at info), and never more than the agent's own level.
    loggerInstance: logger.child({}, { level: logger.isLevelEnabled('warn') ? 'warn' : logger.level }),
    ...(https ? { https } : { http: checking }),
    bodyLimit: limits.bodyBytes,
    // A slow sender (slowloris) is cut off; a long download is not: this bounds receiving the request.
    requestTimeout: limits.requestTimeoutMs,
    // An idle socket is closed after this; a live stream's heartbeats keep it busy within it.
    connectionTimeout: Math.max(limits.requestTimeoutMs * 2, limits.heartbeatSec * 2000),
    keepAliveTimeout: 5000,
    // Stopping does not wait for clients: live streams, exports and idle keep-alive connections end.
    forceCloseConnections: true,
    routerOptions: { maxParamLength: 200 },
    // Unknown parameters are refused by name, not dropped silently.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true, allErrors: false } },
    schemaController: { compilersFactory: lazyCompilers() },
  }) as unknown as FastifyInstance;
  app.server.maxConnections = limits.maxConnections;
  // Unfinished headers are cut off soon (slowloris), whatever the deadline of a whole request.
  app.server.headersTimeout = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs);
  capPerAddress(app.server, limits.maxConnectionsPerAddress);
  installErrorHandlers(app, logger);
  boundJsonDepth(app);
  await app.register(cookie);
  if (opts.config.cors.origins.length) await app.register(cors, { origin: opts.config.cors.origins, credentials: true });
  describeOperations(app);
  await app.register(swagger, {
    openapi: {
      servers: [{ url: '/', description: 'this agent' }],
      info: {
        title: 'edge-agent API',
        version: VERSION,
        license: { name: 'Apache-2.0', url: 'https://www.apache.org/licenses/LICENSE-2.0' },
        description:
          'Readings, aggregates, export, operations and metrics of the edge telemetry agent. Log in at /api/auth/login, or send an API key (Authorization: Bearer eak_...), or HTTP Basic.',
      },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer' },
          basic: { type: 'http', scheme: 'basic' },
          cookie: { type: 'apiKey', in: 'cookie', name: 'edge_session' },
        },
      },
      security: [{ bearer: [] }, { basic: [] }, { cookie: [] }],
    },
  });
  await app.register(swaggerUi, {
    routePrefix: '/api/docs',
    ...swaggerUiFiles(),
    // No call to swagger.io's validator: the agent's LAN needs no Internet.
    uiConfig: { validatorUrl: null },
    // The plugin's policy with its inline scripts' hashes, never framed (clickjacking), no upgrade
    // to https (it would break the page on the plain HTTP listener), nothing from other sites;
    // inline styles, which Swagger UI sets as it renders, are the one allowance (scripts are not).
    staticCSP: true,
    transformStaticCSP: (policy: string) =>
      policy
        .replace("frame-ancestors 'self'", "frame-ancestors 'none'")
        .replace(' upgrade-insecure-requests;', '')
        .replace(' validator.swagger.io', '')
        .replace("font-src 'self' https: data:", "font-src 'self' data:")
        .replace(/style-src [^;]*/, "style-src 'self' 'unsafe-inline'"),
    uiHooks: {
      onRequest: (_req, reply, done) => {
        reply.header('x-frame-options', 'DENY');
        done();
      },
    },
  });
  await app.register(websocket, {
    options: {
      // MQTT packets up to the broker's payload limit; live clients' messages are checked smaller.
      maxPayload: opts.mqttWs?.maxPayload ?? 1024 * 1024,
      // No compression (ws's default, said here): live readings are framed once for every client (ws-frames.ts).
      perMessageDeflate: false,
      handleProtocols: (protocols) => ['mqtt', 'mqttv3.1', 'graphql-transport-ws', 'graphql-ws'].find((p) => protocols.has(p)) ?? false,
    },
  });
  // After the WebSocket plugin: its hook marks upgrade requests, so a refused one's socket is closed.
  refuseForeignHosts(app, hostCheck(opts.config.allowedHosts));
  authenticate(app, {
    users: opts.users,
    keys: opts.keys,
    sessions: opts.sessions,
    guard: opts.guard,
    basic: opts.config.auth.basic,
    allowedOrigins: opts.config.cors.origins,
  });
  paceRequests(app, shared.pace);
  authorize(app, { basic: opts.config.auth.basic });

  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unknown';
    opts.metrics.httpDuration.observe({ method: req.method, route, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
    // Every call that changes something is on record with who made it.
    if (CHANGES.has(req.method) && req.identity && route !== '/api/auth/login') {
      logger.info(
        {
          audit: true,
          user: req.identity.name,
          via: req.identity.via,
          method: req.method,
          route,
          url: req.url.split('?')[0],
          status: reply.statusCode,
          remote: req.ip,
        },
        'audit',
      );
    }
  });

  await app.register(healthRoutes, { readiness: opts.readiness });
  await app.register(authRoutes, { users: opts.users, sessions: opts.sessions, guard: opts.guard, secure: name === 'https' });
  await app.register(apiKeyRoutes, { keys: opts.keys });
  await app.register(userRoutes, { users: opts.users });
  await app.register(mqttSessionRoutes, { api: opts.api });
  const ops = { api: opts.api, queryDuration: opts.metrics.queryDuration, scanReadings: limits.scanReadings };
  await app.register(dataRoutes, { ...ops, pageRows: limits.pageRows });
  await app.register(exportRoutes, {
    api: opts.api,
    slots: shared.exports,
  });
  await app.register(schemaRoutes, { api: opts.api });
  await app.register(deadLetterRoutes, { api: opts.api });
  await app.register(liveRoutes, { api: opts.api, heartbeatMs: limits.heartbeatSec * 1000 });
  await app.register(opsRoutes, {
    api: opts.api,
    readiness: opts.readiness,
    system: opts.system,
    registry: opts.metrics.registry,
    publicMetrics: opts.config.metrics.public,
  });
  await registerGraphql(app, {
    api: opts.api,
    ops,
    heartbeatMs: limits.heartbeatSec * 1000,
    maxDepth: limits.graphqlDepth,
    maxCost: limits.graphqlCost,
    slots: shared.graphql,
  });
  app.get('/api/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  const page = pageFolder();
  if (page) await app.register(pageRoutes, { root: page });
  else logger.warn('the status page is not built (npm run build): / answers 404');
  const ws = opts.mqttWs;
  if (ws) {
    const wsName = name === 'https' ? 'wss' : 'ws';
    await app.register(mqttWebSocketRoute, {
      path: ws.path,
      maxPayload: ws.maxPayload,
      maxConnections: ws.maxConnections,
      allowedOrigins: ws.allowedOrigins,
      handle: (stream, remote) => ws.handle(stream, wsName, remote),
    });
  }
  return app;
}

export async function startWeb(opts: WebOptions): Promise<WebServer> {
  const apps: { name: string; app: FastifyInstance }[] = [];
  const listeners: Record<string, string> = {};
  const shared = shareLimits(opts.config.limits);
  try {
    for (const name of ['http', 'https'] as const) {
      const where = opts[name];
      if (!where) continue;
      const app = await build(name, opts, shared);
      apps.push({ name, app });
      await app.listen({ host: where.host, port: where.port });
      const addr = app.server.address();
      if (addr && typeof addr === 'object') {
        const hostPort = addr.address.includes(':') ? `[${addr.address}]:${addr.port}` : `${addr.address}:${addr.port}`;
        listeners[name] = hostPort;
        if (opts.mqttWs) listeners[name === 'https' ? 'wss' : 'ws'] = hostPort;
      }
    }
  } catch (err) {
    await Promise.all(apps.map(({ app }) => app.close()));
    throw err;
  }
  return { listeners, close: async () => void (await Promise.all(apps.map(({ app }) => app.close()))) };
}

/**
 * Swagger UI's files: in the single executable, assets written out at start (agent/lib/sea.ts); else
 * its package's. Named here, so that the plugin can be bundled (it looks beside itself otherwise).
 */
function swaggerUiFiles(): { baseDir: string; logo: { type: string; content: Buffer } } {
  const baseDir = isSea()
    ? dirname(assetPath('web/swagger-ui/index.html'))
    : dirname(createRequire(import.meta.url).resolve('@fastify/swagger-ui/static/index.html'));
  return { baseDir, logo: { type: 'image/svg+xml', content: readFileSync(join(baseDir, 'logo.svg')) } };
}
