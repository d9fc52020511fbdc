// Authentication and roles on every route: the first-start admin, login sessions (JWT, refresh,
// logout, expiry), API keys, HTTP Basic, throttling, roles, cross-site requests, CORS, audit.
import { execFile } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as connectTcp, type Socket } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../agent/config-schema.js';
import { startStages } from '../../agent/runtime/index.js';
import { CLI, cleanup, portOf, startAgent, tempDir, writeConfig, type InProcessAgent, type Stages } from '../helpers/agent.js';
import { makePki } from '../helpers/pki.js';
import { addUser } from '../helpers/users.js';
import { adminClient, adminPassword, authHeader, postFrom, rawRequest, WebClient } from '../helpers/web.js';
import { until } from '../helpers/servers.js';

const run = promisify(execFile);

/** A path with its parameters filled in, for calling every route of the OpenAPI document. */
const concrete = (path: string) => path.replace(/\{[^}]+\}/g, '1');

describe('web authentication', () => {
  let agent: InProcessAgent;
  let admin: WebClient;
  let anon: WebClient;

  beforeAll(async () => {
    agent = await startAgent({
      web: { auth: { tokenTtl: '4s' } },
      broker: { loginThrottle: { failuresBeforeDelay: 50, failuresBeforeBan: 4, banMs: 60000 } },
    });
    admin = adminClient(agent);
    anon = admin.as(undefined);
    await addUser(agent.configPath, 'vera', 'viewer-pass', ['viewer']);
    await addUser(agent.configPath, 'otto', 'operator-pass', ['operator']);
    await addUser(agent.configPath, 'sensor1', 'sensor-pass', ['sensors']);
  });
  afterAll(async () => {
    await agent.stop();
    cleanup(agent.dir);
  });

  it('creates admin on first start, its password in a private file, and admin can use the API', async () => {
    const file = join(agent.dir, 'data', 'initial-admin-password');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(adminPassword(agent)).toMatch(/^[A-Za-z0-9_-]{24}$/);
    const users = JSON.parse(readFileSync(join(agent.dir, 'data', 'users.json'), 'utf8')) as {
      users: Record<string, { hash: string; roles: string[] }>;
    };
    expect(users.users.admin.roles).toEqual(['admin']);
    expect(users.users.admin.hash).toMatch(/^\$scrypt\$/);
    expect((await admin.get('/api/auth/me')).body).toEqual({ name: 'admin', role: 'admin', via: 'basic' });
  });

  it('the OpenAPI document gives every operation a unique operationId and a summary, and the API a license', async () => {
    const doc = (await admin.get('/api/openapi.json')).body as {
      info: { license?: { name: string } };
      paths: Record<string, Record<string, { operationId?: string; summary?: string }>>;
    };
    const ops = Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.entries(methods).map(([m, op]) => ({ name: `${m} ${path}`, ...op })),
    );
    expect(ops.filter((o) => !o.operationId || !o.summary).map((o) => o.name)).toEqual([]);
    expect(new Set(ops.map((o) => o.operationId)).size).toBe(ops.length);
    expect(ops.find((o) => o.name === 'get /api/schemas/{name}')!.operationId).toBe('getApiSchemasByName');
    expect(doc.info.license?.name).toBe('Apache-2.0');
  });

  it('answers 401 on every route of the OpenAPI document without credentials; only health (and login) are public', async () => {
    const doc = (await admin.get('/api/openapi.json')).body as { paths: Record<string, Record<string, unknown>> };
    const routes = Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((m) => ({ method: m.toUpperCase(), path })),
    );
    expect(routes.length).toBeGreaterThan(25);
    const publicRoutes = [
      'GET /health/live',
      'GET /health/ready',
      'POST /api/auth/login',
      'POST /api/auth/refresh',
      'POST /api/auth/logout',
    ];
    for (const r of routes) {
      const res = await anon.call(r.method, concrete(r.path), r.method === 'GET' || r.method === 'DELETE' ? undefined : {});
      const name = `${r.method} ${r.path}`;
      if (publicRoutes.includes(name)) expect(JSON.stringify(res.body), name).not.toMatch(/credentials required/);
      else {
        expect(res.status, name).toBe(401);
        expect(res.body, name).toMatchObject({ error: 'Unauthorized' });
      }
    }
    // /graphql, /ws and /metrics are outside the document's REST paths: the same rule holds.
    expect((await anon.post('/graphql', { query: '{ schemas { name } }' })).status).toBe(401);
    expect((await anon.get('/metrics')).status).toBe(401);
    expect((await anon.get('/health/live')).status).toBe(200);
    expect((await anon.get('/api/docs/')).status).toBe(401);
    expect((await admin.get('/api/docs/')).status).toBe(200);
  });

  it('logs in with a JWT and a cookie; the token expires; logout ends the session even then; refresh tokens rotate', async () => {
    const bad = await anon.post('/api/auth/login', { username: 'vera', password: 'wrong' });
    expect(bad.status).toBe(401);
    const login = await anon.post('/api/auth/login', { username: 'vera', password: 'viewer-pass' });
    expect(login.status).toBe(200);
    expect(login.body).toMatchObject({ username: 'vera', role: 'viewer' });
    const cookies = login.headers.getSetCookie();
    const session = cookies.find((c) => c.startsWith('edge_session='))!;
    expect(session).toMatch(/HttpOnly/);
    expect(session).toMatch(/SameSite=Strict/);
    expect(session).not.toMatch(/Secure/); // plain HTTP here; the HTTPS listener sets Secure
    const bearer = admin.as({ bearer: login.body.token });
    const cookie = admin.as({ cookie: session.split(';')[0] });
    expect((await bearer.get('/api/auth/me')).body).toMatchObject({ name: 'vera', via: 'bearer' });
    expect((await cookie.get('/api/auth/me')).body).toMatchObject({ name: 'vera', via: 'cookie' });

    // tokenTtl is 4 s: an expired token is refused with a message that says so.
    let expired = await bearer.get('/api/auth/me');
    await until(async () => (expired = await bearer.get('/api/auth/me')).status !== 200, 15_000, 'the token expired');
    expect(expired.status).toBe(401);
    expect(expired.body.message).toMatch(/expired/);
    // A hidden tab's logout, with only its expired access token: the session ends, refresh token and all.
    expect((await bearer.post('/api/auth/logout')).status).toBe(204);
    expect((await anon.post('/api/auth/refresh', { refreshToken: login.body.refreshToken })).status).toBe(401);

    const second = await anon.post('/api/auth/login', { username: 'vera', password: 'viewer-pass' });
    const refreshed = await anon.post('/api/auth/refresh', { refreshToken: second.body.refreshToken });
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.refreshToken).not.toBe(second.body.refreshToken); // rotated
    // The replaced token again at once (another tab): an access token, no new refresh token.
    const twin = await anon.post('/api/auth/refresh', { refreshToken: second.body.refreshToken });
    expect(twin.status).toBe(200);
    expect(twin.body.refreshToken).toBeUndefined();
    const fresh = admin.as({ bearer: refreshed.body.token });
    expect((await fresh.get('/api/auth/me')).status).toBe(200);

    // Logout by the refresh token alone (the cookie the page holds).
    expect((await anon.post('/api/auth/logout', { refreshToken: refreshed.body.refreshToken })).status).toBe(204);
    expect((await fresh.get('/api/auth/me')).status).toBe(401);
    expect((await anon.post('/api/auth/refresh', { refreshToken: refreshed.body.refreshToken })).status).toBe(401);
    // A forged token (signed with another key) is refused.
    const [h, p] = (login.body.token as string).split('.');
    expect((await admin.as({ bearer: `${h}.${p}.AAAA` }).get('/api/auth/me')).status).toBe(401);
  });

  it('gives each role what it may do: 403 names the role needed', async () => {
    const vera = admin.as({ basic: ['vera', 'viewer-pass'] });
    const otto = admin.as({ basic: ['otto', 'operator-pass'] });
    expect((await vera.get('/api/data')).status).toBe(200);
    const denied = await vera.post('/api/data', { topic: 'web/x', payload: { v: 1 } });
    expect(denied.status).toBe(403);
    expect(denied.body.message).toMatch(/needs the operator role; vera has viewer/);
    expect((await otto.post('/api/data', { topic: 'web/x', payload: { v: 1 } })).status).toBe(201);
    expect((await otto.del('/api/data?topic=web/x')).status).toBe(403);
    expect((await admin.del('/api/data?topic=web/x')).status).toBe(200);
    expect((await otto.get('/api/keys')).status).toBe(403);
    expect((await vera.get('/api/config')).status).toBe(403);
    expect((await otto.get('/api/config')).status).toBe(200);
    // A user with only MQTT roles has no web access, though the password is right.
    const sensor = await admin.as({ basic: ['sensor1', 'sensor-pass'] }).get('/api/data');
    expect(sensor.status).toBe(403);
    expect(sensor.body.message).toMatch(/MQTT only/);
    const login = await anon.post('/api/auth/login', { username: 'sensor1', password: 'sensor-pass' });
    expect(login.status).toBe(403);
  });

  it('keeps the config secret-free: GET /api/config redacts secrets', async () => {
    const config = (await admin.get('/api/config')).body as { web: { http: { port: number } } };
    expect(config.web.http.port).toBe(0);
    expect(JSON.stringify(config)).not.toContain(adminPassword(agent));
  });

  it('API keys: created once, stored hashed, listed without secret, scoped by role, revocable; also from the CLI', async () => {
    const created = await admin.post('/api/keys', { name: 'grafana', role: 'viewer' });
    expect(created.status).toBe(201);
    const key = created.body.key as string;
    expect(key).toMatch(/^eak_[0-9a-f]{12}_/);
    const stored = readFileSync(join(agent.dir, 'data', 'api-keys.json'), 'utf8');
    expect(stored).not.toContain(key.slice('eak_'.length + 13)); // the secret (base64url: it may hold '_')
    expect(statSync(join(agent.dir, 'data', 'api-keys.json')).mode & 0o777).toBe(0o600);
    const listed = await admin.get('/api/keys');
    expect(listed.body).toEqual([expect.objectContaining({ name: 'grafana', role: 'viewer' })]);
    expect(JSON.stringify(listed.body)).not.toContain(key);
    const machine = admin.as({ bearer: key });
    expect((await machine.get('/api/auth/me')).body).toEqual({ name: 'key:grafana', role: 'viewer', via: 'api-key' });
    expect((await machine.post('/api/data', { topic: 'k/x', payload: 1 })).status).toBe(403);
    // Basic with a key as the password: what Prometheus' basic_auth sends.
    expect((await admin.as({ basic: ['prometheus', key] }).get('/metrics')).status).toBe(200);
    expect((await admin.post('/api/keys', { name: 'grafana', role: 'admin' })).status).toBe(409);
    expect((await admin.del('/api/keys/grafana')).status).toBe(204);
    expect((await machine.get('/api/auth/me')).status).toBe(401);
    expect((await admin.del('/api/keys/grafana')).status).toBe(404);

    const { stdout, stderr } = await run(process.execPath, [
      CLI,
      '--config',
      agent.configPath,
      'apikey',
      'create',
      'ci',
      '--role',
      'operator',
    ]);
    expect(stderr).toMatch(/shown only now/);
    const cliKey = stdout.trim();
    expect((await admin.as({ bearer: cliKey }).post('/api/data', { topic: 'k/y', payload: 2 })).status).toBe(201);
    const list = await run(process.execPath, [CLI, '--config', agent.configPath, 'apikey', 'list']);
    expect(list.stdout).toMatch(/\tci\toperator\t/);
    expect(list.stdout).not.toContain(cliKey);
    await run(process.execPath, [CLI, '--config', agent.configPath, 'apikey', 'revoke', 'ci']);
    expect((await admin.as({ bearer: cliKey }).get('/api/data')).status).toBe(401);
    await expect(
      run(process.execPath, [CLI, '--config', agent.configPath, 'apikey', 'create', 'x', '--role', 'root']),
    ).rejects.toMatchObject({ code: 2 });
  });

  it('refuses a cookie sent from another site', async () => {
    const login = await anon.post('/api/auth/login', { username: 'otto', password: 'operator-pass' });
    const cookie = admin.as({ cookie: login.headers.getSetCookie()[0].split(';')[0] });
    const host = `127.0.0.1:${agent.port('http')}`;
    const foreign = await cookie.call('POST', '/api/data', { topic: 'c/x', payload: 1 }, { origin: 'http://evil.example' });
    expect(foreign.status).toBe(403);
    expect(foreign.body.message).toMatch(/cross-site/);
    expect((await cookie.call('POST', '/api/data', { topic: 'c/x', payload: 1 }, { origin: `http://${host}` })).status).toBe(201);
  });

  it('refuses any change from a foreign Origin whatever the credentials: Basic with text/plain (no preflight), a login', async () => {
    const host = `127.0.0.1:${agent.port('http')}`;
    const reload = (origin: string) => admin.call('POST', '/api/config/reload', 'x', { origin, 'content-type': 'text/plain' });
    const foreign = await reload('http://evil.example');
    expect(foreign.status).toBe(403);
    expect(foreign.body.message).toMatch(/cross-site request refused: Origin http:\/\/evil\.example/);
    expect((await anon.post('/api/auth/login', { username: 'otto', password: 'operator-pass' }, { origin: 'null' })).status).toBe(403);
    // Controls: the agent's own Origin, no Origin (curl), and a read from anywhere are not refused as cross-site.
    expect((await reload(`http://${host}`)).status).not.toBe(403);
    expect((await admin.call('POST', '/api/data', { topic: 'c/y', payload: 1 })).status).toBe(201);
    expect((await admin.get('/api/data', { origin: 'http://evil.example' })).status).toBe(200);
  });

  it('answers only its own host names (DNS rebinding): a foreign Host gets 403 naming web.allowedHosts, whatever the credentials', async () => {
    const p = agent.port('http');
    const as = (host: string, path = '/api/data') =>
      rawRequest('GET', `http://127.0.0.1:${p}${path}`, { headers: { host, ...authHeader(admin.creds) } });
    const foreign = await as(`evil.example:${p}`);
    expect(foreign.status).toBe(403);
    expect(foreign.body.message).toMatch(/Host "evil\.example" is not a name of this agent.*web\.allowedHosts/);
    expect((await as(`evil.example:${p}`, '/')).status).toBe(403); // the page too
    expect((await as(`localhost:${p}`)).status).toBe(200);
    expect((await as(`127.0.0.1:${p}`, '/')).status).toBe(200);
  });

  it('throttles login guesses like MQTT logins: counted as they start, a ban for the name at that address only', async () => {
    // 200 guesses at once through 24 sockets: no more passwords checked than the ban allows (4).
    const sockets = new HttpAgent({ keepAlive: true, maxSockets: 24 });
    const url = `http://127.0.0.1:${agent.port('http')}/api/auth/login`;
    const sensorLogin = mqtt.connectAsync(`mqtt://127.0.0.1:${agent.port('mqtt')}`, {
      username: 'sensor1',
      password: 'sensor-pass',
      reconnectPeriod: 0,
    });
    const answers = await Promise.all(
      Array.from({ length: 200 }, (_, i) => postFrom(url, { username: 'ghost', password: `guess${i}` }, { agent: sockets })),
    );
    sockets.destroy();
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s === 401).length).toBe(4);
    expect(statuses.filter((s) => s === 429).length).toBe(196);
    expect(answers.find((a) => a.status === 429)!.body.message).toMatch(/ghost at 127\.0\.0\.1 (is banned|has \d+ failed)/);
    await (await sensorLogin).endAsync(); // a sensor logged in during the flood
    // Only the guessed name at the guesser's address is banned: the address logs in as others, and
    // the name from another address, with its password.
    expect((await admin.as({ basic: ['vera', 'viewer-pass'] }).get('/api/data')).status).toBe(200);
    expect((await admin.as({ basic: ['ghost', 'anything'] }).get('/api/data')).status).toBe(429);
    await addUser(agent.configPath, 'ghost', 'ghost-pass', ['viewer']);
    expect((await postFrom(url, { username: 'ghost', password: 'ghost-pass' })).status).toBe(429);
    expect((await postFrom(url, { username: 'ghost', password: 'ghost-pass' }, { localAddress: '127.0.0.2' })).status).toBe(200);
  });
});

describe('web options', () => {
  it('turns HTTP Basic off, keeps tokens; CORS is off unless configured; metrics public only if configured', async () => {
    const agent = await startAgent({
      web: { auth: { basic: false }, cors: { origins: ['http://dash.example'] }, metrics: { public: true } },
    });
    try {
      const base = `http://127.0.0.1:${agent.port('http')}`;
      const basic = await fetch(`${base}/api/data`, {
        headers: { authorization: `Basic ${Buffer.from(`admin:${adminPassword(agent)}`).toString('base64')}` },
      });
      expect(basic.status).toBe(401);
      expect(((await basic.json()) as { message: string }).message).toMatch(/Basic is turned off/);
      const login = (await (
        await fetch(`${base}/api/auth/login`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ username: 'admin', password: adminPassword(agent) }),
        })
      ).json()) as { token: string };
      expect((await fetch(`${base}/api/data`, { headers: { authorization: `Bearer ${login.token}` } })).status).toBe(200);
      const preflight = (origin: string) =>
        fetch(`${base}/api/data`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'GET' } });
      expect((await preflight('http://dash.example')).headers.get('access-control-allow-origin')).toBe('http://dash.example');
      expect((await preflight('http://evil.example')).headers.get('access-control-allow-origin')).toBeNull();
      expect((await fetch(`${base}/metrics`)).status).toBe(200);
    } finally {
      await agent.stop();
      cleanup(agent.dir);
    }
    const plain = await startAgent();
    try {
      const base = `http://127.0.0.1:${plain.port('http')}`;
      const res = await fetch(`${base}/api/data`, {
        method: 'OPTIONS',
        headers: { origin: 'http://dash.example', 'access-control-request-method': 'GET' },
      });
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
      expect((await fetch(`${base}/metrics`)).status).toBe(401);
    } finally {
      await plain.stop();
      cleanup(plain.dir);
    }
  });

  it('ends login sessions when the password changes (access and refresh tokens alike)', async () => {
    // Its own agent with the default token lifetime: on a loaded machine the CLI's scrypt can outlast a 2 s token.
    const agent = await startAgent();
    try {
      const anon = adminClient(agent).as(undefined);
      await addUser(agent.configPath, 'paula', 'first-pass', ['viewer']);
      const login = await anon.post('/api/auth/login', { username: 'paula', password: 'first-pass' });
      const paula = anon.as({ bearer: login.body.token });
      expect((await paula.get('/api/auth/me')).status).toBe(200);
      await addUser(agent.configPath, 'paula', 'second-pass', ['viewer']);
      const after = await paula.get('/api/auth/me');
      expect(after.status).toBe(401);
      expect(after.body.message).toMatch(/password changed/);
      const refresh = await anon.post('/api/auth/refresh', { refreshToken: login.body.refreshToken });
      expect(refresh.status).toBe(401);
      // The new password logs in.
      expect((await anon.post('/api/auth/login', { username: 'paula', password: 'second-pass' })).status).toBe(200);
    } finally {
      await agent.stop();
      cleanup(agent.dir);
    }
  });

  it('bounds requests: a body over the limit gets 413, a request that trickles in is cut off', async () => {
    const agent = await startAgent({ web: { limits: { bodyBytes: 4096, requestTimeoutMs: 1000 } } });
    try {
      const api = adminClient(agent);
      const big = await api.post('/api/data', { topic: 'big/x', payload: 'x'.repeat(5000) });
      expect(big.status).toBe(413);
      expect(big.body).toMatchObject({ error: 'Payload Too Large' });
      expect((await api.post('/api/data', { topic: 'big/x', payload: 'x'.repeat(3000) })).status).toBe(201); // the control
      // Headers sent a byte at a time, never finished: the connection is closed, no answer waits for ever.
      const socket = connectTcp(agent.port('http'), '127.0.0.1');
      socket.on('error', () => {}); // a byte written as the server closes: EPIPE, expected
      await new Promise((r) => socket.once('connect', r));
      const trickle = setInterval(() => socket.write('X'), 200);
      socket.write('GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ');
      await new Promise((r) => socket.once('close', r)); // the headers deadline closed it (else the test times out)
      clearInterval(trickle);
      expect((await api.get('/health/live')).status).toBe(200);
    } finally {
      await agent.stop();
      cleanup(agent.dir);
    }
  });

  it('300 connections with unfinished headers from one address: capped for that address, cut off at the headers deadline; other addresses are answered meanwhile', async () => {
    const agent = await startAgent({ web: { limits: { headersTimeoutMs: 8000, maxConnectionsPerAddress: 32 } } });
    try {
      const open = (localAddress: string) =>
        new Promise<Socket>((resolve) => {
          const socket = connectTcp({ port: agent.port('http'), host: '127.0.0.1', localAddress });
          socket.on('error', () => {});
          socket.resume(); // read what the server sends (a 408), so its closing is seen
          socket.once('connect', () => {
            socket.write('GET /health/live HTTP/1.1\r\nHost: x\r\nX-Never: '); // and nothing more
            resolve(socket);
          });
          socket.once('close', () => resolve(socket));
        });
      const held = await Promise.all(Array.from({ length: 300 }, () => open('127.0.40.1')));
      const stillOpen = () => held.filter((s) => !s.destroyed && !s.readableEnded).length;
      // Those past the cap are closed as they come; the rest are held until the headers deadline.
      await until(() => stillOpen() <= 32, 5000, 'the connections past the cap closed');
      expect(stillOpen()).toBeGreaterThan(0); // the control: the attacker does hold connections
      // Another address is answered at once (before: every request failed until the 30 s request deadline).
      const other = await new Promise<number>((resolve, reject) => {
        const req = httpRequest(
          { host: '127.0.0.1', port: agent.port('http'), path: '/health/live', localAddress: '127.0.40.2' },
          (res) => {
            res.resume();
            resolve(res.statusCode!);
          },
        );
        req.on('error', reject);
        req.end();
      });
      expect(other).toBe(200);
      // The headers deadline (8 s here, 5 s by default) closes the rest, well before requestTimeoutMs (30 s).
      await until(() => stillOpen() === 0, 20_000, 'the held connections closed');
      held.forEach((s) => s.destroy());
    } finally {
      await agent.stop();
      cleanup(agent.dir);
    }
  });

  it('over HTTPS the login cookies are Secure', async () => {
    const dir = tempDir();
    const pki = makePki(dir);
    const agent = await startAgent({ web: { https: { host: '127.0.0.1', port: 0, cert: pki.serverCert, key: pki.serverKey } } }, dir);
    try {
      const res = await new Promise<IncomingMessage>((resolve, reject) => {
        const req = httpsRequest(
          {
            host: '127.0.0.1',
            servername: 'localhost',
            port: agent.port('https'),
            path: '/api/auth/login',
            method: 'POST',
            ca: readFileSync(pki.ca),
            headers: { 'content-type': 'application/json' },
          },
          resolve,
        );
        req.on('error', reject);
        req.end(JSON.stringify({ username: 'admin', password: adminPassword(agent) }));
      });
      res.resume();
      expect(res.statusCode).toBe(200);
      const cookies = res.headers['set-cookie']!;
      expect(cookies).toHaveLength(2);
      for (const c of cookies) expect(c).toMatch(/; Secure/);
      expect(cookies.find((c) => c.startsWith('edge_refresh='))).toMatch(/Path=\/api\/auth/);
    } finally {
      await agent.stop();
      cleanup(dir);
    }
  });

  it('audit-logs every data-changing call with the user, and logs the admin password file, never the password', async () => {
    const dir = tempDir();
    const lines: string[] = [];
    const sink = new Writable({ write: (chunk, _e, done) => (lines.push(...String(chunk).split('\n').filter(Boolean)), done()) });
    const { config } = loadConfig(writeConfig(dir), {});
    const runtime: Stages = await startStages(config, pino({ level: 'info' }, sink));
    try {
      const password = readFileSync(join(dir, 'data', 'initial-admin-password'), 'utf8').trim();
      const client = new WebClient(`http://127.0.0.1:${portOf(runtime.listeners.http)}`, { basic: ['admin', password] });
      expect((await client.post('/api/data', { topic: 'audit/x', payload: { v: 1 } })).status).toBe(201);
      expect((await client.get('/api/data')).status).toBe(200);
      const audited = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.audit);
      // The GET after it was answered, and is not audited (it changes nothing).
      const audit = await until(() => audited().length > 0 && audited(), 5000, 'the audit line');
      expect(audit).toEqual([expect.objectContaining({ user: 'admin', method: 'POST', route: '/api/data', status: 201 })]);
      expect(lines.some((l) => l.includes('initial-admin-password'))).toBe(true);
      expect(lines.some((l) => l.includes(password))).toBe(false);
    } finally {
      await runtime.close();
      cleanup(dir);
    }
  });
});
