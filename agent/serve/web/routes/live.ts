// Live readings: WebSocket /ws (subscribe and unsubscribe with topic filters and field lists) and
// Server-Sent Events /api/stream (one filter set per connection, for simple clients).
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { filterProblem } from '../../../../mqtt-topic/topic.js';
import type { LiveClient } from '../live.js';
import type { ApiSource } from '../api.js';
import { errorSchema, HttpError } from '../errors.js';
import { RETRY_AFTER_SEC } from '../slots.js';
import { textFrames } from '../ws-frames.js';
import { agentOf, fieldsParam, listOf, ownerOf } from './params.js';

export interface LiveRouteOptions {
  api: ApiSource;
  heartbeatMs: number;
}

/** Close codes: 1008 (policy) for a client too slow or sending what the protocol does not allow. */
export const CLOSE_TOO_SLOW = 1008;
const CLOSE_PROTOCOL = 1008;
const MAX_FILTERS = 32;
const MAX_MESSAGE = 65536;

/**
 * What a commit's readings are on the wire, made once for all the clients given the same array
 * (every reading, whole: LiveHub.deliver); held only as long as the array.
 */
function onceEach<T>(make: (readings: readonly string[]) => T): (readings: readonly string[]) => T {
  const made = new WeakMap<readonly string[], T>();
  return (readings) => {
    let wire = made.get(readings);
    if (wire === undefined) made.set(readings, (wire = make(readings)));
    return wire;
  };
}

type ClientMessage =
  { type: 'subscribe'; topics: string[]; fields?: string[] } | { type: 'unsubscribe'; topics: string[] } | { type: 'ping' };

/** What a client sent, checked; an Error says what is wrong. */
function parseMessage(text: string): ClientMessage {
  let m: Record<string, unknown>;
  try {
    m = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new Error('a message is one JSON object');
  }
  if (m === null || typeof m !== 'object') throw new Error('a message is one JSON object');
  if (m.type === 'ping') return { type: 'ping' };
  if (m.type !== 'subscribe' && m.type !== 'unsubscribe') throw new Error('type: one of subscribe, unsubscribe, ping');
  const topics = m.topics;
  if (!Array.isArray(topics) || topics.length === 0 || topics.length > MAX_FILTERS || !topics.every((t) => typeof t === 'string'))
    throw new Error(`topics: 1 to ${MAX_FILTERS} topic filters`);
  for (const t of topics as string[]) {
    const problem = filterProblem(t);
    if (problem) throw new Error(`topics: ${JSON.stringify(t.slice(0, 100))} is not a valid topic filter: ${problem}`);
  }
  if (m.type === 'unsubscribe') return { type: 'unsubscribe', topics: topics as string[] };
  const fields = m.fields;
  if (
    fields !== undefined &&
    (!Array.isArray(fields) || fields.length > 64 || !fields.every((f) => typeof f === 'string' && f.length > 0 && f.length <= 128))
  )
    throw new Error('fields: up to 64 field paths');
  return { type: 'subscribe', topics: topics as string[], fields: fields as string[] | undefined };
}

export const liveRoutes: FastifyPluginAsync<LiveRouteOptions> = async (app, { api, heartbeatMs }) => {
  const wsFrames = onceEach((readings) => textFrames(readings, '{"type":"reading","reading":', '}'));
  const events = onceEach((readings) => Buffer.from(readings.map((r) => `event: reading\ndata: ${r}\n\n`).join('')));
  app.get(
    '/ws',
    {
      websocket: true,
      config: { tokenInQuery: true },
      schema: {
        tags: ['live'],
        description:
          'WebSocket of live readings. Send {"type":"subscribe","topics":["sensors/#"],"fields":["temperature"]} or {"type":"unsubscribe","topics":[...]}; receive {"type":"reading","reading":{...}}, heartbeats, and errors. Closed with 1008 when the client falls behind; refused with 1013 when there are too many live clients (web.limits.liveClients in all, liveClientsPerUser of one user).',
      },
    },
    (socket: WebSocket, req: FastifyRequest) => {
      const hub = api()?.live;
      if (!hub) return socket.close(1013, 'the agent is starting');
      const client: LiveClient = {
        subscriptions: new Map(),
        buffered: () => socket.bufferedAmount,
        // Ready-made frames, straight to the connection: ws itself writes uncompressed frames at once.
        send: (readings) => {
          if (socket.readyState === socket.OPEN) req.raw.socket.write(wsFrames(readings));
        },
        tooSlow: (bytes) => {
          socket.close(CLOSE_TOO_SLOW, `too slow: ${bytes} bytes waiting`.slice(0, 120));
          // The close frame waits behind what the client has not read: if it never reads, cut it off.
          setTimeout(() => socket.terminate(), 5000).unref();
        },
      };
      const refused = hub.add(client, ownerOf(req));
      if (refused) return socket.close(1013, refused);
      let alive = true;
      const heartbeat = setInterval(() => {
        if (!alive) return socket.terminate();
        alive = false;
        socket.ping();
        socket.send(JSON.stringify({ type: 'heartbeat', time: new Date().toISOString() }));
      }, heartbeatMs);
      socket.on('pong', () => (alive = true));
      socket.on('close', () => {
        clearInterval(heartbeat);
        hub.remove(client);
      });
      socket.on('message', (data, isBinary) => {
        const size = Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : (data as Buffer).byteLength;
        if (isBinary || size > MAX_MESSAGE) return socket.close(CLOSE_PROTOCOL, 'messages are JSON text of at most 64 KiB');
        let m: ClientMessage;
        try {
          m = parseMessage(data.toString());
        } catch (err) {
          return socket.send(JSON.stringify({ type: 'error', message: (err as Error).message }));
        }
        if (m.type === 'ping') return socket.send(JSON.stringify({ type: 'pong' }));
        if (m.type === 'unsubscribe') for (const t of m.topics) client.subscriptions.delete(t);
        else {
          if (new Set([...client.subscriptions.keys(), ...m.topics]).size > MAX_FILTERS)
            return socket.send(JSON.stringify({ type: 'error', message: `at most ${MAX_FILTERS} topic filters per client` }));
          for (const t of m.topics) client.subscriptions.set(t, m.fields);
        }
        socket.send(
          JSON.stringify({
            type: m.type === 'subscribe' ? 'subscribed' : 'unsubscribed',
            topics: m.topics,
            subscriptions: [...client.subscriptions.keys()],
          }),
        );
      });
    },
  );

  app.get<{ Querystring: { topic: string[]; fields?: string[] } }>(
    '/api/stream',
    {
      config: { tokenInQuery: true },
      schema: {
        tags: ['live'],
        description:
          'Server-Sent Events of live readings (event: reading, data: the reading as JSON); a comment line as heartbeat; ends when the client falls behind',
        querystring: {
          type: 'object',
          properties: {
            topic: {
              type: 'array',
              items: { type: 'string', minLength: 1, maxLength: 1024 },
              minItems: 1,
              maxItems: MAX_FILTERS,
              default: ['#'],
            },
            fields: fieldsParam,
            access_token: { type: 'string', maxLength: 2000 },
          },
          additionalProperties: false,
        },
        response: { 200: { type: 'string', description: 'text/event-stream' }, 400: errorSchema, 401: errorSchema, 503: errorSchema },
      },
    },
    async (req, reply: FastifyReply) => {
      const hub = agentOf(api).live;
      for (const t of req.query.topic) {
        const problem = filterProblem(t);
        if (problem)
          throw new HttpError(400, `topic: ${JSON.stringify(t.slice(0, 100))} is not a valid topic filter: ${problem}`, [
            { parameter: 'topic', message: problem },
          ]);
      }
      const fields = listOf(req.query.fields);
      const res = reply.raw;
      const client: LiveClient = {
        subscriptions: new Map(req.query.topic.map((t) => [t, fields])),
        buffered: () => res.writableLength,
        send: (readings) => res.write(events(readings)),
        tooSlow: (bytes) => {
          res.write(`event: error\ndata: ${JSON.stringify({ message: `too slow: ${bytes} bytes waiting` })}\n\n`);
          res.end();
        },
      };
      const refused = hub.add(client, ownerOf(req));
      if (refused)
        throw new HttpError(refused === 'too many live clients' ? 503 : 429, refused, undefined, {
          'retry-after': String(RETRY_AFTER_SEC),
        });
      reply.hijack();
      res.writeHead(200, {
        'Content-Type': 'text/event-stream; charset=utf-8',
        'Cache-Control': 'no-store',
        Connection: 'keep-alive',
        'X-Accel-Buffering': 'no',
      });
      res.write(`: subscribed to ${req.query.topic.join(' ')}\n\n`);
      const heartbeat = setInterval(() => res.write(`: heartbeat ${new Date().toISOString()}\n\n`), heartbeatMs);
      res.on('close', () => {
        clearInterval(heartbeat);
        hub.remove(client);
      });
    },
  );
};
