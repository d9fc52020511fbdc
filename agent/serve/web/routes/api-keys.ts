// API keys for machines (admin): created (the key shown once), listed, revoked.
import type { FastifyPluginAsync } from 'fastify';
import type { ApiKeyStore } from '../../../users/api-keys.js';
import { WEB_ROLES, type WebRole } from '../../../users/roles.js';
import { errorSchema, HttpError } from '../errors.js';

const keyInfo = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    role: { type: 'string', enum: [...WEB_ROLES] },
    created: { type: 'string', format: 'date-time' },
  },
  required: ['id', 'name', 'role', 'created'],
} as const;

const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 409: errorSchema };

export const apiKeyRoutes: FastifyPluginAsync<{ keys: ApiKeyStore }> = async (app, { keys }) => {
  app.get(
    '/api/keys',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['auth'],
        description: 'API keys (never their secrets)',
        response: { 200: { type: 'array', items: keyInfo }, ...errors },
      },
    },
    async () => keys.list(),
  );

  app.post<{ Body: { name: string; role: WebRole } }>(
    '/api/keys',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['auth'],
        description: 'create an API key; the answer holds the key, shown this once (send it as Authorization: Bearer <key>)',
        body: {
          type: 'object',
          properties: { name: { type: 'string', pattern: '^[A-Za-z0-9._@-]{1,64}$' }, role: { type: 'string', enum: [...WEB_ROLES] } },
          required: ['name', 'role'],
          additionalProperties: false,
        },
        response: {
          201: { ...keyInfo, properties: { ...keyInfo.properties, key: { type: 'string' } }, required: [...keyInfo.required, 'key'] },
          ...errors,
        },
      },
    },
    async (req, reply) => {
      try {
        return reply.code(201).send(keys.create(req.body.name, req.body.role));
      } catch (err) {
        throw new HttpError(409, (err as Error).message);
      }
    },
  );

  app.delete<{ Params: { key: string } }>(
    '/api/keys/:key',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['auth'],
        description: 'revoke an API key by id or name',
        params: { type: 'object', properties: { key: { type: 'string', maxLength: 64 } }, required: ['key'] },
        response: { 204: { type: 'null' }, ...errors },
      },
    },
    async (req, reply) => {
      if (!keys.revoke(req.params.key)) throw new HttpError(404, `no API key ${req.params.key}`);
      return reply.code(204).send();
    },
  );
};
