// GET and POST /graphql, and subscriptions over a WebSocket on it (graphql-transport-ws). The
// schema and graphql-js are loaded when the first request comes (graphql-engine.ts): about 10 MB of
// heap an agent nobody queries with GraphQL does not hold.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import type { ApiSource } from './api.js';
import { HttpError, sendError } from './errors.js';
import type { EngineOptions, GraphqlEngine } from './graphql-engine.js';
import type { Operations } from './operations.js';
import { goneSignal, ownerOf } from './routes/params.js';
import type { Slots } from './slots.js';

export interface GraphqlOptions {
  api: ApiSource;
  ops: Operations;
  heartbeatMs: number;
  maxDepth: number;
  maxCost: number;
  /** GraphQL requests over HTTP at once, in all and per user. */
  slots: Slots;
}

type Params = { query?: unknown; variables?: unknown; operationName?: unknown };

export async function registerGraphql(app: FastifyInstance, opts: GraphqlOptions): Promise<void> {
  let engine: Promise<GraphqlEngine> | undefined;
  const load = () => (engine ??= import('./graphql-engine.js').then((m) => m.createGraphqlEngine(opts satisfies EngineOptions)));

  // A request over HTTP holds a slot until its answer is sent or its client goes (subscriptions are live clients).
  const takeSlot = async (req: FastifyRequest, reply: FastifyReply) => {
    if (req.ws) return;
    try {
      reply.raw.once('close', opts.slots.take(ownerOf(req)));
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      return sendError(reply.headers(err.headers), err.status, err.message);
    }
  };
  const answer = (method: 'GET' | 'POST') => async (req: FastifyRequest, reply: FastifyReply) => {
    const params = ((method === 'GET' ? req.query : req.body) ?? {}) as Params;
    const { status, body, internal } = await (await load()).http(params, method, { identity: req.identity, signal: goneSignal(reply) });
    for (const err of internal ?? []) req.log.error({ err: err.message }, 'GraphQL resolver failed');
    return reply.code(status).send(body);
  };
  // Browsers' WebSocket cannot send headers: the token may come as ?access_token= on /graphql.
  const config = { tokenInQuery: true };
  app.route({
    method: 'GET',
    url: '/graphql',
    config,
    schema: { hide: true },
    preHandler: takeSlot,
    handler: answer('GET'),
    wsHandler: (socket: WebSocket, req: FastifyRequest) => {
      // What the client sends while the engine loads is kept for it.
      const early: string[] = [];
      const keep = (data: unknown) => early.push(String(data));
      socket.on('message', keep);
      load().then(
        (e) => {
          socket.off('message', keep);
          e.serve(socket, req.identity, early);
        },
        (err: Error) => socket.close(1011, err.message.slice(0, 100)),
      );
    },
  });
  app.post('/graphql', { config, schema: { hide: true }, preHandler: takeSlot }, answer('POST'));
}
