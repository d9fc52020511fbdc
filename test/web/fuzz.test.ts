// Every route of the OpenAPI document, called with random and mutated parameters and bodies: no
// 5xx, errors always JSON {error, message}, and the agent keeps serving. fast-check prints the
// seed of a failing run, so it can be replayed.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, startAgent, type InProcessAgent } from '../helpers/agent.js';
import { adminClient, type WebClient } from '../helpers/web.js';

interface Route {
  method: string;
  path: string;
  params: string[];
}

/** Values that break naive parsers: wildcards, huge numbers, odd encodings, injections. */
const nasty = fc.constantFrom(
  '#',
  '+',
  'a/#/b',
  '/',
  '',
  ' ',
  '-1',
  '0',
  '1e309',
  'NaN',
  '9007199254740993',
  'true',
  'null',
  '[]',
  '{}',
  "' OR 1=1 --",
  '%00',
  '\u0000',
  '../../etc/passwd',
  'x'.repeat(5000),
  '2026-13-45T99:99:99Z',
  't>',
  '>=5',
  'a.b.c.d.e>1',
  'ééé',
  '\uD800',
);

/** Every byte percent-encoded (a lone surrogate becomes U+FFFD's bytes, as a client would send). */
const encode = (v: string) => [...Buffer.from(v)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');

const value = fc.oneof(fc.string({ maxLength: 40 }), fc.integer().map(String), fc.double().map(String), nasty);

describe('request fuzz over every route', () => {
  let agent: InProcessAgent;
  let api: WebClient;
  let routes: Route[];

  beforeAll(async () => {
    agent = await startAgent({
      sinks: [{ name: 'cloud', type: 'influx', url: 'http://127.0.0.1:9', database: 'x' }],
      // 4,000 requests as fast as they are answered: not paced (test/web/pace.test.ts checks the pace).
      web: { limits: { requestsPerSecond: 100000, requestBurst: 100000 } },
    });
    api = adminClient(agent);
    await api.post('/api/data', {
      readings: [
        { topic: 'f/a', payload: { t: 1, s: 'x' } },
        { topic: 'f/b', payload: { t: 2 } },
      ],
    });
    await api.post('/api/schemas', { name: 'fz', topics: ['fz/#'], fields: { t: 'float' } });
    const doc = (await api.get('/api/openapi.json')).body as {
      paths: Record<string, Record<string, { parameters?: { name: string; in: string }[] }>>;
    };
    routes = Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, op]) => ({
        method: method.toUpperCase(),
        path,
        params: (op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name),
      })),
    );
  });
  afterAll(async () => {
    await agent.stop();
    cleanup(agent.dir);
  });

  it('never answers 5xx, always with a JSON error body, and stays up', { timeout: 180_000 }, async () => {
    expect(routes.length).toBeGreaterThan(25);
    const seen = new Map<number, number>();
    const request = fc.record({
      route: fc.integer({ min: 0, max: 1000 }),
      pathValue: value,
      query: fc.array(
        fc.tuple(
          fc.oneof(
            fc.constantFrom(
              'topic',
              'from',
              'to',
              'where',
              'limit',
              'cursor',
              'order',
              'fields',
              'format',
              'bucket',
              'stats',
              'gzip',
              'version',
              'reason',
            ),
            fc.string({ maxLength: 10 }),
          ),
          value,
        ),
        { maxLength: 5 },
      ),
      useKnown: fc.boolean(),
      body: fc.oneof(
        fc.jsonValue({ maxDepth: 3 }),
        fc.record({ topic: value, payload: fc.jsonValue({ maxDepth: 2 }) }),
        fc.record({ readings: fc.array(fc.record({ topic: value, payload: fc.jsonValue({ maxDepth: 2 }) }), { maxLength: 3 }) }),
        fc.record({
          name: value,
          topics: fc.array(value, { maxLength: 2 }),
          fields: fc.dictionary(fc.string({ maxLength: 5 }), fc.constantFrom('float', 'integer', 'kelvin', 'string')),
        }),
        fc.record({ ids: fc.array(fc.integer(), { maxLength: 3 }) }),
        fc.string(),
      ),
    });
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const route = routes[r.route % routes.length];
        const query = r.query.map(([k, v], i) => [r.useKnown && route.params.length ? route.params[i % route.params.length] : k, v]);
        const path = route.path.replace(/\{[^}]+\}/g, encode(r.pathValue));
        const qs = query.map(([k, v]) => `${encode(k)}=${encode(v)}`).join('&');
        // Deleting everything or logging out would not break the agent, but would make later runs see less.
        if (route.path === '/api/auth/logout') return;
        // A live stream never ends: its parameters are checked before it starts (see below).
        if (route.path === '/api/stream' || route.path === '/ws') return;
        const res = await api.call(
          route.method,
          `${path}${qs ? `?${qs}` : ''}`,
          route.method === 'GET' || route.method === 'DELETE' ? undefined : typeof r.body === 'string' ? r.body : JSON.stringify(r.body),
          route.method === 'GET' || route.method === 'DELETE' ? {} : { 'content-type': 'application/json' },
        );
        seen.set(res.status, (seen.get(res.status) ?? 0) + 1);
        const where = `${route.method} ${path}?${qs}`;
        // Readiness answers 503 by design once the sink (unreachable here) is found down; a request
        // refused before it is routed (431: a query too long for Node's headers) is checked as any other.
        if (route.path === '/health/ready' && (res.status === 200 || res.status === 503))
          return void expect(res.body, where).toMatchObject({
            status: res.status === 200 ? expect.stringMatching(/^(ready|buffering)$/) : 'not ready',
          });
        expect(res.status, where).toBeLessThan(500);
        // GraphQL answers in its own shape ({data, errors}); every other route in ours.
        if (res.status >= 400 && route.path !== '/graphql')
          expect(res.body, where).toMatchObject({ error: expect.any(String), message: expect.any(String) });
      }),
      { numRuns: 4000 },
    );
    for (const qs of ['topic=a/%23/b', 'fields=' + 'x'.repeat(300), 'colour=red', 'topic='])
      expect((await api.get(`/api/stream?${qs}`)).status, qs).toBe(400);
    // Malformed percent-encoding and invalid UTF-8 in the query and the path: read leniently or refused, never a 5xx.
    for (const raw of [
      '/api/data?topic=%E0%A4%A',
      '/api/data?topic=%ff%fe',
      '/api/dead-letters/%ff',
      '/api/schemas/%E0%A4%A',
      '/api/data?where=%00',
    ]) {
      const res = await api.get(raw);
      expect(res.status, raw).toBeLessThan(500);
      expect(res.headers.get('content-type'), raw).toMatch(/^application\/json/);
    }
    // The fuzz reached both sides: requests that passed and ones that were refused.
    expect([...seen.keys()].some((s) => s < 300)).toBe(true);
    expect(seen.get(400) ?? 0).toBeGreaterThan(100);
    expect((await api.get('/health/live')).status).toBe(200);
    expect((await api.get('/api/data?topic=f/%23')).body.readings.length).toBeGreaterThanOrEqual(0);
  });
});
