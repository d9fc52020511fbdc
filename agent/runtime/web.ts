// The web listeners and who may use them: users, API keys, sessions, the login guard shared with the
// broker. They start first, so that health answers while a full disk keeps the log from opening.
import { join } from 'node:path';
import { LoginGuard, type EmbeddedBroker } from '../../embedded-broker/index.js';
import type { Config } from '../config-schema.js';
import { durationMs } from '../config/keys.js';
import { createMetrics, type Metrics, type MetricsSource } from '../health/metrics.js';
import type { Readiness } from '../health/readiness.js';
import type { SystemMonitor } from '../health/system.js';
import type { Closers } from '../lib/closers.js';
import type { Logger } from '../lib/logger.js';
import type { AgentApi } from '../serve/web/api.js';
import { Sessions } from '../serve/web/auth/sessions.js';
import { startWeb, type WebServer } from '../serve/web/server.js';
import { ApiKeyStore, apiKeysPath } from '../users/api-keys.js';
import { ensureAdmin } from '../users/initial-admin.js';
import { UserStore, usersFilePath } from '../users/store.js';

/** What the web layer serves once the data path runs: until then the API answers 503 and metrics hold only the process's. */
export interface Served {
  api?: AgentApi;
  metrics?: MetricsSource;
  /** MQTT over WebSocket waits for the broker. */
  broker?: EmbeddedBroker;
}

export interface WebStage {
  server: WebServer;
  metrics: Metrics;
  users: UserStore;
  loginGuard: LoginGuard;
}

export async function startWebStage(
  config: Config,
  served: Served,
  parts: { readiness: Readiness; system: SystemMonitor | undefined },
  logger: Logger,
  started: Closers,
): Promise<WebStage> {
  const { broker: b, web: w, agent } = config;
  const users = new UserStore(usersFilePath(config));
  const stopAdmin = await ensureAdmin(users, w.auth.initialAdminFile ?? join(agent.dataDir, 'initial-admin-password'), logger);
  started.push(async () => stopAdmin());
  const loginGuard = new LoginGuard(
    { ...b.loginThrottle, maxPendingLogins: b.limits.maxPendingLogins, maxPendingPerAddress: b.limits.maxPendingPerAddress },
    logger.child({ stage: 'login' }),
  );
  const metrics = createMetrics(() => served.metrics);
  const server = await startWeb({
    http: w.http.enabled ? w.http : undefined,
    https: w.https.cert && w.https.key ? { ...w.https, cert: w.https.cert, key: w.https.key } : undefined,
    mqttWs: b.ws.enabled
      ? {
          path: b.ws.path,
          maxPayload: b.limits.maxPayloadBytes + 65536,
          maxConnections: b.ws.maxConnections,
          allowedOrigins: b.ws.allowedOrigins,
          handle: (stream, listener, remote) => (served.broker ? served.broker.handleStream(stream, listener, remote) : stream.destroy()),
        }
      : undefined,
    config: w,
    users,
    keys: new ApiKeyStore(apiKeysPath(agent.dataDir)),
    sessions: new Sessions({ tokenMs: durationMs(w.auth.tokenTtl), refreshMs: durationMs(w.auth.refreshTtl) }),
    guard: loginGuard,
    readiness: parts.readiness,
    metrics,
    system: () => parts.system?.latest(),
    api: () => served.api,
    logger: logger.child({ stage: 'web' }),
  });
  started.push(() => server.close());
  return { server, metrics, users, loginGuard };
}
