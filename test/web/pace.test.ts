// Each client's requests at a pace (web.limits.requestsPerSecond, requestBurst): a burst answered at
// once, then each request waits its turn, beyond twice the burst 429 with Retry-After; another user,
// or another address without credentials, is not held back; a request whose client left while it
// waited does nothing.
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pace } from '../../agent/serve/web/pace.js';
import { cleanup, startAgent, tempDir, type InProcessAgent } from '../helpers/agent.js';
import { makePki } from '../helpers/pki.js';
import { adminClient, rawRequest, type WebClient } from '../helpers/web.js';

describe('Pace', () => {
  it('answers a burst at once, then one request per 1/perSecond, then refuses; a quiet second drains it', () => {
    const pace = new Pace(10, 3);
    const waits = Array.from({ length: 8 }, () => pace.admit('a', 1000));
    expect(waits).toEqual([0, 0, 0, 100, 200, 300, Infinity, Infinity]);
    // Another client at the same moment is not behind this one.
    expect(pace.admit('b', 1000)).toBe(0);
    // Six in excess drain at 10 a second: after 0.6 s the burst is whole again.
    expect(pace.admit('a', 1600)).toBe(0);
    expect(pace.longestWaitMs).toBe(300);
  });
});

describe('requests paced per client', () => {
  let agent: InProcessAgent;
  let admin: WebClient;
  const base = () => `http://127.0.0.1:${agent.port('http')}`;

  beforeAll(async () => {
    agent = await startAgent({ web: { limits: { requestsPerSecond: 2, requestBurst: 3 } } });
    admin = adminClient(agent);
    for (const [name, role] of [
      ['pat', 'viewer'],
      ['vic', 'viewer'],
      ['ops', 'operator'],
    ])
      expect((await admin.put(`/api/users/${name}`, { password: `${name}-password-1`, roles: [role] })).status).toBe(200);
  });
  afterAll(async () => {
    await agent.stop();
    cleanup(agent.dir);
  });

  it("a user's burst at once, then one every 0.5 s, beyond twice the burst 429; another user is answered meanwhile", async () => {
    const pat = admin.as({ basic: ['pat', 'pat-password-1'] });
    const vic = admin.as({ basic: ['vic', 'vic-password-1'] });
    // The Basic check is cached after the first: the burst below is not spent on scrypt.
    expect((await pat.get('/api/stats')).status).toBe(200);
    await new Promise((r) => setTimeout(r, 2000)); // pat's first request drained
    const started = performance.now();
    const finished: { who: string; at: number; status: number; retryAfter: string | null; message?: string }[] = [];
    const ask = (who: string, client: WebClient) =>
      client.get('/api/stats').then((res) =>
        finished.push({
          who,
          at: performance.now() - started,
          status: res.status,
          retryAfter: res.headers.get('retry-after'),
          message: res.body?.message,
        }),
      );
    const pats = Array.from({ length: 9 }, () => ask('pat', pat));
    await new Promise((r) => setTimeout(r, 100));
    await ask('vic', vic);
    await Promise.all(pats);

    const patDone = finished.filter((f) => f.who === 'pat');
    expect(patDone.filter((f) => f.status === 200)).toHaveLength(6);
    const refused = patDone.filter((f) => f.status === 429);
    expect(refused).toHaveLength(3);
    for (const r of refused) {
      expect(r.retryAfter).toBe('2');
      expect(r.message).toMatch(/web\.limits\.requestBurst/);
      expect(r.at).toBeGreaterThanOrEqual(1450); // a refusal is answered no sooner than the longest wait (1.5 s)
    }
    // Three waited their turn, the last about 1.5 s (less what drained while the nine were sent).
    const answered = patDone.filter((f) => f.status === 200).map((f) => f.at);
    expect(Math.max(...answered)).toBeGreaterThanOrEqual(1400);
    expect(answered.filter((at) => at < 400).length).toBeGreaterThanOrEqual(1); // the burst did not wait
    // vic, asking after pat's nine, was answered before pat's last waiting one.
    const vicAt = finished.find((f) => f.who === 'vic')!;
    expect(vicAt.status).toBe(200);
    expect(vicAt.at).toBeLessThan(Math.max(...answered));
  });

  it('requests without credentials count against their address; another address is not held back', async () => {
    const from = (address: string) =>
      rawRequest('GET', `${base()}/api/stats`, { localAddress: address }).then((r) => ({ ...r, at: performance.now() - started }));
    const started = performance.now();
    const flood = Array.from({ length: 5 }, () => from('127.0.0.77'));
    await new Promise((r) => setTimeout(r, 100));
    const other = await from('127.0.0.78');
    const answers = await Promise.all(flood);
    expect(answers.map((a) => a.status)).toEqual([401, 401, 401, 401, 401]);
    expect(other.status).toBe(401);
    // Two of five waited: 0.5 and 1 s; the other address was answered before the last of them.
    expect(Math.max(...answers.map((a) => a.at))).toBeGreaterThanOrEqual(900);
    expect(other.at).toBeLessThan(Math.max(...answers.map((a) => a.at)));
  });

  it('a request whose client left while it waited does nothing; one that stayed is answered', async () => {
    const queries = async () => {
      const text = (await admin.get('/metrics')).body as string;
      return Number(/^database_query_duration_seconds_count\{source="sqlite"\} (\d+)/m.exec(text)?.[1] ?? 0);
    };
    const ops = (signal?: AbortSignal) =>
      fetch(`${base()}/api/data?topic=paced/%23`, {
        headers: { authorization: `Basic ${Buffer.from('ops:ops-password-1').toString('base64')}` },
        signal,
      });
    // Four at once: the burst, and one waiting 0.5 s; the leaving one then waits about 1 s, the staying
    // one 1.5 s (sent together, so requests answered slowly cannot drain the burst before them).
    const before = await queries();
    const ahead = Array.from({ length: 4 }, () => ops());
    await new Promise((r) => setTimeout(r, 50));
    const gone = new AbortController();
    const leaving = ops(gone.signal).then(
      (res) => `answered ${res.status}`,
      (err: Error) => err.name,
    );
    const staying = ops();
    await new Promise((r) => setTimeout(r, 200));
    gone.abort();
    expect(await leaving).toBe('AbortError');
    expect((await Promise.all(ahead)).map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect((await staying).status).toBe(200);
    await new Promise((r) => setTimeout(r, 500)); // past the leaving one's turn
    expect(await queries()).toBe(before + 5); // the four ahead and the one that stayed
  });
});

describe('one pace for every listener', () => {
  it('requests over HTTP and HTTPS count against the same client', async () => {
    const dir = tempDir();
    const pki = makePki(dir);
    const agent = await startAgent(
      {
        web: {
          https: { host: '127.0.0.1', port: 0, cert: pki.serverCert, key: pki.serverKey },
          limits: { requestsPerSecond: 2, requestBurst: 3 },
        },
      },
      dir,
    );
    try {
      const started = performance.now();
      const overHttps = () =>
        new Promise<{ status: number; at: number }>((resolve, reject) => {
          const req = httpsRequest(
            { host: '127.0.0.1', servername: 'localhost', port: agent.port('https'), path: '/api/stats', ca: readFileSync(pki.ca) },
            (res) => {
              res.resume();
              res.on('end', () => resolve({ status: res.statusCode!, at: performance.now() - started }));
            },
          );
          req.on('error', reject);
          req.end();
        });
      const overHttp = () =>
        rawRequest('GET', `http://127.0.0.1:${agent.port('http')}/api/stats`).then((r) => ({
          status: r.status,
          at: performance.now() - started,
        }));
      // Six from one address without credentials, three on each listener: a burst of three in all.
      const answers = await Promise.all([overHttps(), overHttp(), overHttps(), overHttp(), overHttps(), overHttp()]);
      expect(answers.map((a) => a.status)).toEqual([401, 401, 401, 401, 401, 401]);
      // Three waited 0.5, 1 and 1.5 s (less what drained while they were sent); with a pace per
      // listener each would have had a burst of its own and none would have waited.
      expect(Math.max(...answers.map((a) => a.at))).toBeGreaterThanOrEqual(1300);
    } finally {
      await agent.stop();
      cleanup(agent.dir);
    }
  });
});
