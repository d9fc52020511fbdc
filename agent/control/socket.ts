// The agent's local control socket (<dataDir>/agent.sock, mode 0600): how `edge-agent sync status`
// and `edge-agent session` ask the running agent, which holds the log's and the broker's locks.
// JSON over HTTP on a unix socket.
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import type { Logger } from '../lib/logger.js';

export const controlSocketPath = (dataDir: string) => join(dataDir, 'agent.sock');

/**
 * `GET /sync/status` answers that path; a key ending in `/` (`POST /sessions/end/`) answers every
 * path under it, with the rest (URL-decoded) as its argument. A route's undefined is a 404.
 */
export type ControlRoutes = Record<string, (arg: string) => Promise<unknown>>;

function routeFor(routes: ControlRoutes, method: string, url: string): [(arg: string) => Promise<unknown>, string] | undefined {
  const wanted = `${method} ${url}`;
  if (routes[wanted]) return [routes[wanted], ''];
  const prefix = Object.keys(routes).find((k) => k.endsWith('/') && wanted.startsWith(k) && wanted.length > k.length);
  return prefix ? [routes[prefix], decodeURIComponent(wanted.slice(prefix.length))] : undefined;
}

export async function startControlSocket(path: string, routes: ControlRoutes, logger: Logger): Promise<{ close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const found = routeFor(routes, req.method ?? '', req.url ?? '');
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
    };
    if (!found) return reply(404, { error: `no route ${req.method} ${req.url}` });
    const [route, arg] = found;
    route(arg).then(
      (body) => (body === undefined ? reply(404, { error: `nothing at ${req.url}` }) : reply(200, body)),
      (err: Error) => reply(500, { error: err.message }),
    );
  });
  // A socket file left by a killed agent: nobody listens on it any more (the log's lock says we are alone).
  if (existsSync(path)) unlinkSync(path);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
    chmodSync(path, 0o600);
  } catch (err) {
    logger.warn({ path, err: (err as Error).message }, 'no control socket: `edge-agent sync status` will read the log only');
    return { close: async () => {} };
  }
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** GET (or POST) a route of a running agent; undefined when no agent answers there. */
export function askAgent(path: string, route: string, method: 'GET' | 'POST' = 'GET'): Promise<unknown | undefined> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: path, path: route, method, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString() || 'null');
        if (res.statusCode === 200) resolve(body);
        else reject(new Error(`agent answered ${res.statusCode}: ${body?.error ?? ''}`));
      });
    });
    req.on('timeout', () => req.destroy(new Error('the agent did not answer within 10 s')));
    req.on('error', (err: NodeJS.ErrnoException) =>
      ['ENOENT', 'ECONNREFUSED'].includes(err.code ?? '') ? resolve(undefined) : reject(err),
    );
    req.end();
  });
}
