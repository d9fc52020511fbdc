// Fastify's own validators and serializers, each compiled at its route's first request
// (agent/serve/web/lazy-compilers.ts): the same answers, and a start that compiles nothing.
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { lazyCompilers } from '../../agent/serve/web/lazy-compilers.js';

const AJV = { customOptions: { removeAdditional: false, coerceTypes: 'array' as const, useDefaults: true, allErrors: false } };

const lazyApp = () => Fastify({ ajv: AJV, schemaController: { compilersFactory: lazyCompilers() } });

let open: ReturnType<typeof Fastify> | undefined;
afterEach(async () => open?.close());

describe('lazily compiled route schemas', () => {
  it('validate, fill defaults and serialize as Fastify does', async () => {
    const server = (open = lazyApp());
    server.get(
      '/items',
      {
        schema: {
          querystring: { type: 'object', properties: { limit: { type: 'integer', minimum: 1, default: 10 } }, additionalProperties: false },
          response: { 200: { type: 'object', properties: { limit: { type: 'integer' } } } },
        },
      },
      async (req) => ({ limit: (req.query as { limit: number }).limit, secret: 'not in the schema' }),
    );
    await server.ready();
    const bad = await server.inject('/items?limit=zero');
    expect(bad.statusCode).toBe(400);
    expect(bad.json().message).toMatch(/querystring\/limit must be integer/);
    const good = await server.inject('/items');
    expect(good.statusCode).toBe(200);
    // The default applied, and the response serializer dropped what its schema does not name.
    expect(good.json()).toEqual({ limit: 10 });
    const unknown = await server.inject('/items?other=1');
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().message).toMatch(/must NOT have additional properties/);
  });

  it('compile nothing at start: a schema AJV refuses fails its own route, not the start nor other routes', async () => {
    const broken = { schema: { querystring: { type: 'nonsense' } } };
    // The control: Fastify's compilers, eager, refuse to start.
    const eager = Fastify({ ajv: AJV });
    eager.get('/broken', broken, async () => ({ ok: true }));
    await expect(eager.ready()).rejects.toThrow(/Failed building the validation schema/);
    await eager.close();
    const server = (open = lazyApp());
    server.get('/broken', broken, async () => ({ ok: true }));
    server.get('/fine', { schema: { querystring: { type: 'object', properties: { n: { type: 'integer' } } } } }, async () => ({
      ok: true,
    }));
    await server.ready();
    expect((await server.inject('/fine?n=1')).statusCode).toBe(200);
    expect((await server.inject('/broken')).statusCode).toBe(500);
    expect((await server.inject('/fine?n=2')).json()).toEqual({ ok: true });
  });

  it('refuses header schemas, which Fastify lower-cases only for its own compiler', async () => {
    const server = (open = lazyApp());
    server.get('/h', { schema: { headers: { type: 'object', properties: { 'X-Token': { type: 'string' } } } } }, async () => ({}));
    await expect(server.ready()).rejects.toThrow(/header schemas are not supported/);
  });
});
