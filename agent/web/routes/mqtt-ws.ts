import type { Duplex } from 'node:stream';
import websocket from '@fastify/websocket';
import type { FastifyPluginAsync } from 'fastify';
import { createWebSocketStream } from 'ws';

export interface MqttWsOptions {
  path: string;
  maxPayload: number;
  /** Hand one connection to the broker. */
  handle(stream: Duplex, remoteAddress: string): void;
}

/** MQTT over WebSocket (subprotocol "mqtt"), on the web listener. */
export const mqttWebSocketRoute: FastifyPluginAsync<MqttWsOptions> = async (app, opts) => {
  await app.register(websocket, {
    options: {
      maxPayload: opts.maxPayload,
      handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : protocols.has('mqttv3.1') ? 'mqttv3.1' : false),
    },
  });
  app.get(opts.path, { websocket: true }, (socket, req) => {
    const stream = createWebSocketStream(socket);
    stream.on('error', () => socket.terminate());
    opts.handle(stream, req.socket.remoteAddress ?? '');
  });
};
