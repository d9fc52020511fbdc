// Who is asking, and may he: every route needs a web role (viewer unless its config says
// `access`), except those marked public. Credentials, in order: Authorization (Bearer token or API
// key; Basic with a password or an API key), then the login cookie. Failed checks are throttled by
// the broker's LoginGuard, shared, so guessing over HTTP and MQTT counts as one.
import { createHash } from 'node:crypto';
import type {} from '@fastify/cookie';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { LoginGuard } from '../../../../embedded-broker/index.js';
import { looksLikeApiKey, type ApiKeyStore } from '../../../users/api-keys.js';
import { mayAct, webRoleOf, type WebRole } from '../../../users/roles.js';
import type { UserStore } from '../../../users/store.js';
import { sendError } from '../errors.js';
import { TokenRefused, type Sessions } from './sessions.js';

export const SESSION_COOKIE = 'edge_session';
export const REFRESH_COOKIE = 'edge_refresh';

export type Access = 'public' | WebRole;

export interface Identity {
  /** A user name, or `key:<name>` for an API key. */
  name: string;
  role: WebRole;
  via: 'cookie' | 'bearer' | 'basic' | 'api-key';
  /** The login session, when the token or cookie came from /api/auth/login. */
  sessionId?: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    identity: Identity | null;
    /** Why the credentials were refused, answered by authorize(). */
    refusal: Refusal | null;
  }
  interface FastifyContextConfig {
    access?: Access;
    /** Take the access token from `?access_token=` too: browsers' WebSocket and EventSource cannot set headers. */
    tokenInQuery?: boolean;
    /** A public route that says more to a caller with valid credentials (any role); bad ones count as none. */
    identifyIfAny?: boolean;
  }
}

export interface AuthOptions {
  users: UserStore;
  keys: ApiKeyStore;
  sessions: Sessions;
  guard: LoginGuard;
  basic: boolean;
  /** Other sites' origins that may call with the cookie (web.cors.origins). */
  allowedOrigins: string[];
}

export class Refusal extends Error {
  constructor(
    readonly status: 401 | 403 | 429,
    message: string,
  ) {
    super(message);
  }
}

/** Basic checks that passed, for a minute: a scrape every few seconds must not cost an scrypt each. */
const BASIC_CACHE_MS = 60_000;

export function authenticate(app: FastifyInstance, opts: AuthOptions): void {
  const basicOk = new Map<string, { until: number; revision: number }>();
  const basicChecks = new Map<string, Promise<void>>();

  async function checkPassword(address: string, username: string, password: string): Promise<string[]> {
    const verdict = await opts.guard.login(address, username, () => opts.users.verify(username, Buffer.from(password)));
    if (verdict.ok) return verdict.value;
    throw verdict.banned ? new Refusal(429, verdict.banned) : new Refusal(401, 'bad user name or password');
  }

  function byKey(address: string, key: string): Identity {
    const verdict = opts.guard.loginNow(address, undefined, () => opts.keys.verify(key) ?? null);
    if (verdict.ok) return { name: `key:${verdict.value.name}`, role: verdict.value.role, via: 'api-key' };
    throw verdict.banned ? new Refusal(429, verdict.banned) : new Refusal(401, 'the API key is not valid (revoked or unknown)');
  }

  async function byUser(username: string, via: Identity['via'], sessionId?: string): Promise<Identity> {
    const roles = await opts.users.roles(username);
    if (!roles) throw new Refusal(401, `user ${username} no longer exists`);
    const role = webRoleOf(roles);
    if (!role) throw new Refusal(403, `user ${username} has no web role (viewer, operator or admin): MQTT only`);
    return { name: username, role, via, ...(sessionId ? { sessionId } : {}) };
  }

  async function byBasic(address: string, encoded: string): Promise<Identity> {
    if (!opts.basic) throw new Refusal(401, 'HTTP Basic is turned off (web.auth.basic): log in at /api/auth/login or use an API key');
    const text = Buffer.from(encoded, 'base64').toString('utf8');
    const colon = text.indexOf(':');
    if (colon < 0) throw new Refusal(401, 'malformed Basic credentials');
    const [username, password] = [text.slice(0, colon), text.slice(colon + 1)];
    if (looksLikeApiKey(password)) return byKey(address, password);
    // A banned address or name is refused even with a password that worked before, as over MQTT.
    const ban = opts.guard.banned(address, username);
    if (ban) throw new Refusal(429, ban);
    const cacheKey = createHash('sha256').update(`${username}\u0000${password}`).digest('base64');
    const hit = basicOk.get(cacheKey);
    if (!(hit && hit.until > Date.now() && hit.revision === opts.users.revision())) {
      // Requests that come together with the same credentials wait for one check: a client's first
      // burst is not an scrypt each, which would fill the thread pool the log's writes share.
      let check = basicChecks.get(cacheKey);
      if (!check) {
        check = checkPassword(address, username, password)
          .then(() => {
            if (basicOk.size > 1000) basicOk.clear();
            basicOk.set(cacheKey, { until: Date.now() + BASIC_CACHE_MS, revision: opts.users.revision() });
          })
          .finally(() => basicChecks.delete(cacheKey));
        basicChecks.set(cacheKey, check);
      }
      await check;
    }
    return byUser(username, 'basic');
  }

  function byToken(token: string, via: 'bearer' | 'cookie') {
    try {
      const { username, sessionId, fingerprint } = opts.sessions.verify(token);
      if (opts.users.fingerprint(username) !== fingerprint) {
        opts.sessions.close(sessionId);
        throw new Refusal(401, 'the password changed since this login: log in again');
      }
      return byUser(username, via, sessionId);
    } catch (err) {
      if (err instanceof TokenRefused) throw new Refusal(401, err.message);
      throw err;
    }
  }

  async function identify(req: FastifyRequest): Promise<Identity | null> {
    const header = req.headers.authorization;
    if (header) {
      const [scheme, value = ''] = header.split(' ', 2);
      if (/^bearer$/i.test(scheme)) return looksLikeApiKey(value) ? byKey(req.ip, value) : byToken(value, 'bearer');
      if (/^basic$/i.test(scheme)) return byBasic(req.ip, value);
      throw new Refusal(401, `unsupported Authorization scheme ${JSON.stringify(scheme.slice(0, 20))}: use Bearer or Basic`);
    }
    const inQuery = req.routeOptions.config.tokenInQuery ? (req.query as { access_token?: unknown }).access_token : undefined;
    if (typeof inQuery === 'string') return looksLikeApiKey(inQuery) ? byKey(req.ip, inQuery) : byToken(inQuery, 'bearer');
    const cookie = req.cookies[SESSION_COOKIE];
    if (cookie) {
      // SameSite=Strict keeps the cookie off other sites' requests; a foreign Origin (a page elsewhere
      // opening a WebSocket with it, say) is refused as well, unless CORS names it.
      if (foreignOrigin(req, opts.allowedOrigins)) throw new Refusal(403, 'cross-site request refused');
      return byToken(cookie, 'cookie');
    }
    return null;
  }

  app.decorateRequest('identity', null);
  app.decorateRequest('refusal', null);
  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    // A browser sends Basic credentials it remembers with another site's form or text/plain POST
    // (no preflight): a change from a foreign Origin is refused whatever the credentials.
    if (CHANGES.has(req.method) && foreignOrigin(req, opts.allowedOrigins))
      return sendError(
        reply,
        403,
        `cross-site request refused: Origin ${req.headers.origin!.slice(0, 100)} may not change anything here (web.cors.origins)`,
      );
    if (accessOf(req) === 'public') {
      if (req.routeOptions.config.identifyIfAny)
        req.identity = await identify(req).catch((err: unknown) => (err instanceof Refusal ? null : Promise.reject(err)));
      return;
    }
    try {
      req.identity = await identify(req);
    } catch (err) {
      if (!(err instanceof Refusal)) throw err;
      req.refusal = err; // answered by authorize(), once the request has waited its turn (pace.ts)
    }
  });
}

const accessOf = (req: FastifyRequest): Access => req.routeOptions.config.access ?? 'viewer';

/** May he: refuses what authenticate() found wrong, no credentials, or a role short of the route's. */
export function authorize(app: FastifyInstance, opts: { basic: boolean }): void {
  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    const access = accessOf(req);
    if (access === 'public') return;
    const refusal =
      req.refusal ??
      (!req.identity
        ? new Refusal(401, 'credentials required: log in at /api/auth/login, or send a Bearer token, an API key, or HTTP Basic')
        : !mayAct(req.identity.role, access)
          ? new Refusal(
              403,
              `${req.method} ${req.routeOptions.url} needs the ${access} role; ${req.identity.name} has ${req.identity.role}`,
            )
          : null);
    if (!refusal) return;
    if (refusal.status === 401) challenge(req, reply, opts.basic);
    return sendError(reply, refusal.status, refusal.message);
  });
}

/** Tell curl and Prometheus Basic works; not a browser's fetch (the page logs in with a form). */
function challenge(req: FastifyRequest, reply: FastifyReply, basic: boolean): void {
  reply.header('WWW-Authenticate', basic && !req.headers['x-requested-with'] ? 'Basic realm="edge-agent", charset="UTF-8"' : 'Bearer');
}

const CHANGES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** An Origin header that is neither this agent's nor one CORS names (no header: not a browser's page). */
function foreignOrigin(req: FastifyRequest, allowed: string[]): boolean {
  return req.headers.origin !== undefined && !sameOrigin(req) && !allowed.includes(req.headers.origin);
}

function sameOrigin(req: FastifyRequest): boolean {
  try {
    return new URL(req.headers.origin!).host === req.headers.host;
  } catch {
    return false;
  }
}
