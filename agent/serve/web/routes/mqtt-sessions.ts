// MQTT persistent sessions (clean=false): listed (operator) with their owner, state and expiry, and
// ended (admin), which frees the client id for its rightful owner.
import type { FastifyPluginAsync } from 'fastify';
import type { ApiSource } from '../api.js';
import { errorSchema, HttpError } from '../errors.js';
import { agentOf } from './params.js';

const session = {
  type: 'object',
  properties: {
    clientId: { type: 'string' },
    owner: { type: 'string', description: "the user it belongs to; '' for an anonymous client" },
    connected: { type: 'boolean' },
    seenAt: { type: 'string', format: 'date-time', description: 'when its client last connected or went away' },
    expiresAt: {
      type: 'string',
      format: 'date-time',
      description: 'when it ends if its client stays away (broker.persistentSessionExpiry)',
    },
    subscriptions: { type: 'integer' },
    queued: { type: 'integer', description: 'messages waiting for its client' },
  },
  required: ['clientId', 'owner', 'connected', 'seenAt', 'subscriptions', 'queued'],
} as const;

const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema };

export const mqttSessionRoutes: FastifyPluginAsync<{ api: ApiSource }> = async (app, { api }) => {
  app.get(
    '/api/mqtt/sessions',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['broker'],
        description: 'persistent MQTT sessions: owner, connected, queued messages, expiry',
        response: { 200: { type: 'array', items: session }, ...errors },
      },
    },
    async () =>
      agentOf(api)
        .sessions.list()
        .map((s) => ({ ...s, seenAt: new Date(s.seenAt).toISOString() }))
        .sort((a, b) => a.clientId.localeCompare(b.clientId)),
  );

  app.delete<{ Params: { clientId: string } }>(
    '/api/mqtt/sessions/:clientId',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['broker'],
        description:
          'end a persistent session: its client (if connected) is disconnected, its subscriptions and queued messages go, its client id is free',
        params: { type: 'object', properties: { clientId: { type: 'string', minLength: 1, maxLength: 256 } }, required: ['clientId'] },
        response: { 204: { type: 'null' }, ...errors },
      },
    },
    async (req, reply) => {
      if (!(await agentOf(api).sessions.end(req.params.clientId)))
        throw new HttpError(404, `no persistent session of client ${req.params.clientId}`);
      return reply.code(204).send();
    },
  );
};
