// Logging in and out: a session's access token (JWT) and refresh token, as JSON for programs and
// as httpOnly, SameSite=Strict cookies for the page.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { LoginGuard } from '../../../../embedded-broker/index.js';
import { webRoleOf } from '../../../users/roles.js';
import type { UserStore } from '../../../users/store.js';
import { REFRESH_COOKIE, SESSION_COOKIE } from '../auth/authenticate.js';
import { TokenRefused, type IssuedTokens, type Sessions } from '../auth/sessions.js';
import { errorSchema, HttpError } from '../errors.js';

export interface AuthRouteOptions {
  users: UserStore;
  sessions: Sessions;
  guard: LoginGuard;
  /** Cookies marked Secure (the HTTPS listener). */
  secure: boolean;
}

const tokens = {
  type: 'object',
  properties: {
    username: { type: 'string' },
    role: { type: 'string' },
    token: { type: 'string', description: 'access token (JWT): Authorization: Bearer <token>' },
    expiresAt: { type: 'string', format: 'date-time' },
    refreshToken: { type: 'string', description: 'POST /api/auth/refresh with it for a new access token' },
    refreshExpiresAt: { type: 'string', format: 'date-time' },
  },
  required: ['username', 'role', 'token', 'expiresAt', 'refreshToken', 'refreshExpiresAt'],
} as const;

const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 429: errorSchema };

export const authRoutes: FastifyPluginAsync<AuthRouteOptions> = async (app, opts) => {
  /** The tokens as JSON and as cookies; a refresh within the reuse grace has no new refresh token. */
  function issue(reply: FastifyReply, username: string, role: string, t: Omit<IssuedTokens, 'refreshToken'> & { refreshToken?: string }) {
    const cookie = { httpOnly: true, sameSite: 'strict' as const, secure: opts.secure };
    reply.setCookie(SESSION_COOKIE, t.token, { ...cookie, path: '/', expires: new Date(t.expiresAt) });
    if (t.refreshToken)
      reply.setCookie(REFRESH_COOKIE, t.refreshToken, { ...cookie, path: '/api/auth', expires: new Date(t.refreshExpiresAt) });
    return {
      username,
      role,
      token: t.token,
      expiresAt: new Date(t.expiresAt).toISOString(),
      refreshToken: t.refreshToken,
      refreshExpiresAt: new Date(t.refreshExpiresAt).toISOString(),
    };
  }

  async function roleOf(username: string): Promise<string> {
    const role = webRoleOf((await opts.users.roles(username)) ?? []);
    if (!role) throw new HttpError(403, `user ${username} has no web role (viewer, operator or admin): MQTT only`);
    return role;
  }

  app.post<{ Body: { username: string; password: string } }>(
    '/api/auth/login',
    {
      config: { access: 'public' },
      schema: {
        tags: ['auth'],
        description: 'log in with a user name and password (throttled like MQTT logins: a growing delay, then a ban)',
        body: {
          type: 'object',
          properties: {
            username: { type: 'string', minLength: 1, maxLength: 64 },
            password: { type: 'string', minLength: 1, maxLength: 1024 },
          },
          required: ['username', 'password'],
          additionalProperties: false,
        },
        response: { 200: tokens, ...errors },
      },
    },
    async (req, reply) => {
      const { username, password } = req.body;
      const verdict = await opts.guard.login(req.ip, username, () => opts.users.verify(username, Buffer.from(password)));
      if (verdict.banned) throw new HttpError(429, verdict.banned);
      if (!verdict.ok) {
        req.log.warn({ username, remote: req.ip }, 'web login refused');
        throw new HttpError(401, 'bad user name or password');
      }
      const role = await roleOf(username);
      req.log.info({ audit: true, user: username, remote: req.ip }, 'web login');
      return issue(reply, username, role, opts.sessions.open(username, opts.users.fingerprint(username)!));
    },
  );

  app.post<{ Body: { refreshToken?: string } | undefined }>(
    '/api/auth/refresh',
    {
      config: { access: 'public' },
      schema: {
        tags: ['auth'],
        description:
          'a new access token and the next refresh token for a login session, for the refresh token from the body, else from its cookie. Each refresh token is good once: using one already replaced ends the session, unless it was replaced in the last 10 s (two tabs at once: then an access token only, without refreshToken)',
        body: { type: 'object', properties: { refreshToken: { type: 'string', maxLength: 200 } }, additionalProperties: false },
        response: { 200: { ...tokens, required: tokens.required.filter((k) => k !== 'refreshToken') }, ...errors },
      },
    },
    async (req, reply) => {
      const refreshToken = req.body?.refreshToken ?? req.cookies[REFRESH_COOKIE];
      if (!refreshToken) throw new HttpError(401, 'no refresh token: give refreshToken, or log in');
      try {
        const t = opts.sessions.refresh(refreshToken);
        if (opts.users.fingerprint(t.username) !== t.fingerprint)
          throw new TokenRefused('the password changed since this login: log in again');
        return issue(reply, t.username, await roleOf(t.username), t);
      } catch (err) {
        if (err instanceof TokenRefused) throw new HttpError(401, err.message);
        throw err;
      }
    },
  );

  app.post<{ Body: { refreshToken?: string } | undefined }>(
    '/api/auth/logout',
    {
      // An expired access token must not keep the session alive: the refresh token (body or
      // cookie) or the access token, expired or not, names the session to end.
      config: { access: 'public' },
      schema: {
        tags: ['auth'],
        description:
          'end this login session (its access and refresh tokens stop working) and clear its cookies; works with an expired access token or the refresh token alone',
        body: { type: 'object', properties: { refreshToken: { type: 'string', maxLength: 200 } }, additionalProperties: false },
        response: { 204: { type: 'null' }, ...errors },
      },
    },
    async (req, reply) => logout(req, reply),
  );

  async function logout(req: FastifyRequest<{ Body: { refreshToken?: string } | undefined }>, reply: FastifyReply) {
    const bearer = /^bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    opts.sessions.end({ refresh: req.body?.refreshToken ?? req.cookies[REFRESH_COOKIE], access: bearer ?? req.cookies[SESSION_COOKIE] });
    reply.clearCookie(SESSION_COOKIE, { path: '/' });
    reply.clearCookie(REFRESH_COOKIE, { path: '/api/auth' });
    return reply.code(204).send();
  }

  app.get(
    '/api/auth/me',
    {
      schema: {
        tags: ['auth'],
        description: 'who the credentials speak for',
        response: {
          200: {
            type: 'object',
            properties: { name: { type: 'string' }, role: { type: 'string' }, via: { type: 'string' } },
            required: ['name', 'role', 'via'],
          },
          ...errors,
        },
      },
    },
    async (req) => {
      const { name, role, via } = req.identity!;
      return { name, role, via };
    },
  );
};
