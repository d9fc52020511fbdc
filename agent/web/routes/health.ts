import type { FastifyPluginAsync } from 'fastify';

const liveResponse = {
  200: {
    type: 'object',
    properties: { status: { type: 'string', const: 'ok' }, uptimeSeconds: { type: 'number' } },
    required: ['status'],
  },
} as const;

/** Liveness: the process serves requests. */
export const healthRoutes: FastifyPluginAsync = async (app) => {
  app.get('/health/live', { schema: { description: 'liveness probe', response: liveResponse } }, async () => ({
    status: 'ok',
    uptimeSeconds: Math.round(process.uptime()),
  }));
};
