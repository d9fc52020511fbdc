// Users (admin): listed with their roles, added or changed (password, roles), removed; as the CLI's
// `edge-agent user` does, the same file. A changed password ends that user's login sessions.
import type { FastifyPluginAsync } from 'fastify';
import { USERNAME_PATTERN, type UserStore } from '../../../users/store.js';
import { errorSchema, HttpError } from '../errors.js';

const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 409: errorSchema };

const roles = {
  type: 'array',
  items: { type: 'string', pattern: '^[A-Za-z0-9._@-]{1,64}$' },
  maxItems: 32,
  uniqueItems: true,
  description: 'web roles (viewer, operator, admin) and roles the broker ACL names',
} as const;

const user = { type: 'object', properties: { username: { type: 'string' }, roles }, required: ['username', 'roles'] } as const;
const nameParam = {
  type: 'object',
  properties: { name: { type: 'string', pattern: USERNAME_PATTERN.source } },
  required: ['name'],
} as const;

export const userRoutes: FastifyPluginAsync<{ users: UserStore }> = async (app, { users }) => {
  app.get(
    '/api/users',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['auth'],
        description: 'users and their roles (never their passwords)',
        response: { 200: { type: 'array', items: user }, ...errors },
      },
    },
    async () => users.list().sort((a, b) => a.username.localeCompare(b.username)),
  );

  app.put<{ Params: { name: string }; Body: { password?: string; roles: string[] } }>(
    '/api/users/:name',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['auth'],
        description: 'add a user (password required) or change one: its roles, and its password if given (which ends its login sessions)',
        params: nameParam,
        body: {
          type: 'object',
          properties: { password: { type: 'string', minLength: 8, maxLength: 1024 }, roles },
          required: ['roles'],
          additionalProperties: false,
        },
        response: {
          200: { ...user, properties: { ...user.properties, created: { type: 'boolean' } }, required: [...user.required, 'created'] },
          ...errors,
        },
      },
    },
    async (req) => {
      const { name } = req.params;
      const { password, roles: wanted } = req.body;
      const created = (await users.roles(name)) === null;
      if (created && password === undefined)
        throw new HttpError(400, 'body.password: a new user needs a password', [
          { parameter: 'body.password', message: 'a new user needs a password' },
        ]);
      if (name === req.identity!.name && !wanted.includes('admin'))
        throw new HttpError(409, 'you cannot take the admin role from yourself: another admin can');
      if (password !== undefined) await users.add(name, password, wanted);
      else users.setRoles(name, wanted);
      return { username: name, roles: wanted, created };
    },
  );

  app.delete<{ Params: { name: string } }>(
    '/api/users/:name',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['auth'],
        description: 'remove a user (its login sessions end)',
        params: nameParam,
        response: { 204: { type: 'null' }, ...errors },
      },
    },
    async (req, reply) => {
      if (req.params.name === req.identity!.name) throw new HttpError(409, 'you cannot remove yourself: another admin can');
      if (!users.remove(req.params.name)) throw new HttpError(404, `no user named ${req.params.name}`);
      return reply.code(204).send();
    },
  );
};
