import type { FastifyPluginAsync } from 'fastify';
import { statusOf, type PartHealth, type Readiness } from '../../../health/readiness.js';

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
    lastError: {
      type: 'object',
      properties: { message: { type: 'string' }, at: { type: 'string', format: 'date-time' } },
      required: ['message', 'at'],
    },
  },
  required: ['name', 'state', 'since'],
} as const;

const readyBody = {
  type: 'object',
  properties: {
    status: {
      type: 'string',
      enum: ['ready', 'buffering', 'not ready'],
      description: 'buffering: ready, with a sink in an outage the log rides out (health.readiness.sinkOutages)',
    },
    parts: { type: 'array', items: part },
  },
  required: ['status', 'parts'],
} as const;

/** For a caller without credentials: the kind of part and its state, not its name, host or error. */
function withoutDetails(part: PartHealth, index: number): PartHealth {
  return { name: part.name.startsWith('sink:') ? `sink ${index}` : part.name, state: part.state.split(':')[0], since: part.since };
}

/** Liveness: the process serves requests. Readiness: every part of the data path works. */
export const healthRoutes: FastifyPluginAsync<{ readiness: Readiness }> = async (app, { readiness }) => {
  app.get(
    '/health/live',
    { config: { access: 'public' }, schema: { description: 'liveness probe', response: liveResponse } },
    async () => ({
      status: 'ok',
      uptimeSeconds: Math.round(process.uptime()),
    }),
  );
  app.get(
    '/health/ready',
    {
      config: { access: 'public', identifyIfAny: true },
      schema: {
        description:
          'readiness: 200 when the broker, the log, the store and every sink work (status ready), or when a sink is only retrying and the log keeps its readings (status buffering; health.readiness.sinkOutages), else 503; each part with its state. Without credentials, only the states: sinks unnamed, no errors',
        response: { 200: readyBody, 503: readyBody },
      },
    },
    async (req, reply) => {
      const report = await readiness.report();
      return reply
        .code(report.ready ? 200 : 503)
        .send({ status: statusOf(report), parts: req.identity ? report.parts : report.parts.map(withoutDetails) });
    },
  );
};
