// Users over the API (admin): add, change roles, change a password (which ends that user's
// sessions), remove; bad requests named; an admin cannot lock himself out; others are refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserStore } from '../../agent/users/store.js';
import { cleanup, startAgent, type InProcessAgent } from '../helpers/agent.js';
import { adminClient, type WebClient } from '../helpers/web.js';
import { join } from 'node:path';

describe('users API', () => {
  let agent: InProcessAgent;
  let api: WebClient;

  beforeAll(async () => {
    agent = await startAgent();
    api = adminClient(agent);
  });
  afterAll(async () => {
    await agent.stop();
    cleanup(agent.dir);
  });

  it('adds, changes and removes users, in the users file the CLI uses', async () => {
    expect((await api.put('/api/users/sam', { roles: ['viewer'] })).body).toMatchObject({
      error: 'Bad Request',
      message: 'body.password: a new user needs a password',
    });
    const added = await api.put('/api/users/sam', { password: 'sam-password-1', roles: ['viewer', 'sensors'] });
    expect(added).toMatchObject({ status: 200, body: { username: 'sam', roles: ['viewer', 'sensors'], created: true } });
    const sam = api.as({ basic: ['sam', 'sam-password-1'] });
    expect((await sam.get('/api/stats')).status).toBe(200);
    expect((await sam.get('/api/users')).status).toBe(403);

    // Roles change, the password stays.
    expect((await api.put('/api/users/sam', { roles: ['operator'] })).body).toMatchObject({ roles: ['operator'], created: false });
    expect((await sam.get('/api/auth/me')).body).toMatchObject({ name: 'sam', role: 'operator' });
    const store = new UserStore(join(agent.dir, 'data', 'users.json'));
    expect(await store.roles('sam')).toEqual(['operator']);
    expect(await store.verify('sam', Buffer.from('sam-password-1'))).toEqual(['operator']);

    // A new password ends the sessions made with the old one.
    const login = await api.as(undefined).post('/api/auth/login', { username: 'sam', password: 'sam-password-1' });
    const session = api.as({ bearer: login.body.token });
    expect((await session.get('/api/stats')).status).toBe(200);
    expect((await api.put('/api/users/sam', { password: 'sam-password-2', roles: ['operator'] })).status).toBe(200);
    expect((await session.get('/api/stats')).status).toBe(401);
    expect((await api.as({ basic: ['sam', 'sam-password-2'] }).get('/api/stats')).status).toBe(200);

    expect((await api.get('/api/users')).body).toEqual([
      { username: 'admin', roles: ['admin'] },
      { username: 'sam', roles: ['operator'] },
    ]);
    expect((await api.del('/api/users/sam')).status).toBe(204);
    expect((await api.as({ basic: ['sam', 'sam-password-2'] }).get('/api/stats')).status).toBe(401);
    expect((await api.del('/api/users/sam')).status).toBe(404);
  });

  it('names bad requests, and keeps an admin from locking himself out', async () => {
    const short = await api.put('/api/users/kim', { password: 'short', roles: ['viewer'] });
    expect(short.status).toBe(400);
    expect(short.body.message).toMatch(/^body\.password: must NOT have fewer than 8 characters/);
    const badName = await api.put('/api/users/bad%20name', { password: 'long-enough', roles: [] });
    expect(badName.status).toBe(400);
    expect(badName.body.message).toMatch(/^name: must match pattern/);
    const extra = await api.put('/api/users/kim', { password: 'long-enough', roles: [], colour: 'red' });
    expect(extra.body.message).toBe('body.colour: must NOT have additional properties (no such parameter)');
    expect((await api.put('/api/users/admin', { roles: ['viewer'] })).status).toBe(409);
    expect((await api.del('/api/users/admin')).status).toBe(409);
    // The control: admin is still admin, and may change his own password.
    expect((await api.get('/api/auth/me')).body).toMatchObject({ role: 'admin' });
    expect((await api.get('/api/users')).body.map((u: { username: string }) => u.username)).toEqual(['admin']);
  });

  it('a user named __proto__ or constructor is a user like any other: created, listed, logs in, removed', async () => {
    for (const name of ['__proto__', 'constructor']) {
      const made = await api.put(`/api/users/${name}`, { password: 'long-enough-1', roles: ['viewer'] });
      expect(made.body).toMatchObject({ username: name, created: true });
      expect((await api.put(`/api/users/${name}`, { roles: ['viewer', 'operator'] })).body.created).toBe(false);
      expect((await api.get('/api/users')).body).toContainEqual({ username: name, roles: ['viewer', 'operator'] });
      expect((await api.as({ basic: [name, 'long-enough-1'] }).get('/api/auth/me')).body).toMatchObject({ name, role: 'operator' });
      expect((await api.del(`/api/users/${name}`)).status).toBe(204);
    }
    expect((await api.get('/api/users')).body.map((u: { username: string }) => u.username)).toEqual(['admin']);
    expect(Object.prototype).not.toHaveProperty('roles'); // nothing leaked into prototypes
  });
});
