import type { FastifyPluginAsync } from 'fastify';
import type { Readiness } from '../../health/readiness.js';

const liveResponse = {
  200: {
    type: 'object',
    properties: { status: { type: 'string', const: 'ok' }, uptimeSeconds: { type: 'number' } },
    required: ['status'],
  },
} as const;

const part = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    state: { type: 'string', description: 'ok, starting, retrying, stuck, down, or refusing: <why>' },
    since: { type: 'string', format: 'date-time' },
    lastError: { type: 'object', properties: { message: { type: 'string' }, at: { type: 'string', format: 'date-time' } }, required: ['message', 'at'] },
  },
  required: ['name', 'state', 'since'],
} as const;

const readyBody = {
  type: 'object',
  properties: { status: { type: 'string', enum: ['ready', 'not ready'] }, parts: { type: 'array', items: part } },
  required: ['status', 'parts'],
} as const;

/** Liveness: the process serves requests. Readiness: every part of the data path works. */
export const healthRoutes: FastifyPluginAsync<{ readiness: Readiness }> = async (app, { readiness }) => {
  app.get('/health/live', { config: { access: 'public' }, schema: { description: 'liveness probe', response: liveResponse } }, async () => ({
    status: 'ok',
    uptimeSeconds: Math.round(process.uptime()),
  }));
  app.get('/health/ready', { config: { access: 'public' }, schema: { description: 'readiness: 200 when the broker, the log, the store and every sink work, else 503; each part with its state', response: { 200: readyBody, 503: readyBody } } }, async (_req, reply) => {
    const { ready, parts } = await readiness.report();
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', parts });
  });
};
