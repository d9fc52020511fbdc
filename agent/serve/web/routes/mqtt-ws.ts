import type { Duplex } from 'node:stream';
import type { FastifyPluginAsync } from 'fastify';
import { createWebSocketStream } from 'ws';

export interface MqttWsOptions {
  path: string;
  maxPayload: number;
  /** Open at once on this listener (its own share of the listener's connections). */
  maxConnections: number;
  /** Origins besides the agent's own that may open it; `*` for any. A request with no Origin (not a browser) may. */
  allowedOrigins: string[];
  /** Hand one connection to the broker. */
  handle(stream: Duplex, remoteAddress: string): void;
}

/** MQTT over WebSocket (subprotocol "mqtt"), on the web listener. */
export const mqttWebSocketRoute: FastifyPluginAsync<MqttWsOptions> = async (app, opts) => {
  const allowed = new Set(opts.allowedOrigins);
  let open = 0;
  // A page in a browser on the Pi (or reached through a tunnel) would connect from loopback, where
  // anonymous access is allowed: only the agent's own pages, and origins the config names, may.
  const originOk = (origin: string | undefined, host: string | undefined, secure: boolean) =>
    origin === undefined ||
    allowed.has('*') ||
    allowed.has(origin) ||
    (host !== undefined && origin === `${secure ? 'https' : 'http'}://${host}`);
  app.get(
    opts.path,
    {
      websocket: true,
      // The broker authenticates MQTT's own CONNECT.
      config: { access: 'public' },
      schema: { hide: true },
      preValidation: async (req, reply) => {
        if (!originOk(req.headers.origin, req.headers.host, req.protocol === 'https')) {
          await reply.code(403).send({
            error: 'Forbidden',
            message: `Origin ${req.headers.origin} may not open MQTT over WebSocket (broker.ws.allowedOrigins)`,
          });
        } else if (open >= opts.maxConnections) {
          await reply
            .code(503)
            .header('retry-after', '10')
            .send({
              error: 'Service Unavailable',
              message: `too many MQTT over WebSocket connections (broker.ws.maxConnections: ${opts.maxConnections})`,
            });
        }
      },
    },
    (socket, req) => {
      open++;
      socket.once('close', () => open--);
      const stream = createWebSocketStream(socket);
      stream.on('error', () => socket.terminate());
      opts.handle(stream, req.socket.remoteAddress ?? '');
    },
  );
};
