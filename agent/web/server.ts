// The web listeners (HTTP, and HTTPS when a certificate is configured), each a Fastify instance with the same routes.
import { readFileSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Readiness } from '../health/readiness.js';
import type { Logger } from '../log.js';
import { healthRoutes } from './routes/health.js';
import { mqttWebSocketRoute } from './routes/mqtt-ws.js';

export interface WebOptions {
  http?: { host: string; port: number };
  https?: { host: string; port: number; cert: string; key: string; passphrase?: string };
  mqttWs?: { path: string; maxPayload: number; allowedOrigins: string[]; handle(stream: Duplex, listener: string, remoteAddress: string): void };
  readiness: Readiness;
  log: Logger;
}

export interface WebServer {
  listeners: Record<string, string>;
  close(): Promise<void>;
}

async function build(name: 'http' | 'https', opts: WebOptions): Promise<FastifyInstance> {
  const https = name === 'https' && opts.https ? { cert: readFileSync(opts.https.cert), key: readFileSync(opts.https.key), passphrase: opts.https.passphrase } : null;
  const app = Fastify({ loggerInstance: opts.log.child({ listener: name }, { level: 'warn' }), ...(https ? { https } : {}) }) as unknown as FastifyInstance;
  await app.register(healthRoutes, { readiness: opts.readiness });
  const ws = opts.mqttWs;
  if (ws) {
    const wsName = name === 'https' ? 'wss' : 'ws';
    await app.register(mqttWebSocketRoute, { path: ws.path, maxPayload: ws.maxPayload, allowedOrigins: ws.allowedOrigins, handle: (stream, remote) => ws.handle(stream, wsName, remote) });
  }
  return app;
}

export async function startWeb(opts: WebOptions): Promise<WebServer> {
  const apps: { name: string; app: FastifyInstance }[] = [];
  const listeners: Record<string, string> = {};
  try {
    for (const name of ['http', 'https'] as const) {
      const where = opts[name];
      if (!where) continue;
      const app = await build(name, opts);
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
