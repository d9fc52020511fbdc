// Operations: health in detail, counters, the log and its consumers, sinks, the config, metrics.
import type { FastifyPluginAsync } from 'fastify';
import type { Registry } from 'prom-client';
import { statusOf, type Readiness } from '../../../health/readiness.js';
import type { SystemSample } from '../../../health/system.js';
import { VERSION } from '../../../lib/version.js';
import type { ApiSource } from '../api.js';
import { ConfigError } from '../../../config/load.js';
import { errorSchema, HttpError } from '../errors.js';
import { agentOf } from './params.js';

export interface OpsRouteOptions {
  api: ApiSource;
  readiness: Readiness;
  system: () => SystemSample | undefined;
  registry: Registry;
  /** /metrics without credentials. */
  publicMetrics: boolean;
}

const errors = { 401: errorSchema, 403: errorSchema, 503: errorSchema };
const anyObject = { type: 'object', additionalProperties: true } as const;

export const opsRoutes: FastifyPluginAsync<OpsRouteOptions> = async (app, { api, readiness, system, registry, publicMetrics }) => {
  app.get(
    '/api/health',
    {
      schema: {
        tags: ['operations'],
        description:
          "readiness of each part, version and uptime; the machine: CPU, temperature, memory, network, and a Raspberry Pi's throttling flags (now and since boot)",
        response: { 200: anyObject, ...errors },
      },
    },
    async () => {
      const report = await readiness.report();
      const { parts } = report;
      const sensors = api()?.sensors() ?? [];
      return {
        status: statusOf(report),
        version: VERSION,
        node: process.version,
        uptimeSeconds: Math.round(process.uptime()),
        parts,
        system: system() ?? null,
        clock: api()?.clock() ?? null,
        gpio: api()?.gpio() ?? null,
        sensors: {
          ok: sensors.filter((x) => x.state === 'ok').length,
          stale: sensors.filter((x) => x.state === 'stale').map((x) => x.sensor),
        },
      };
    },
  );

  app.get(
    '/api/sensors',
    {
      schema: {
        tags: ['operations'],
        description: 'sensors watched for silence (health.sensors): state (ok or stale), last seen, readings, rate, refused readings',
        response: { 200: { type: 'array', items: anyObject }, ...errors },
      },
    },
    async () => agentOf(api).sensors(),
  );

  app.get(
    '/api/alerts',
    {
      schema: {
        tags: ['operations'],
        description: 'alerts firing now, and the latest firings and resolutions',
        response: { 200: anyObject, ...errors },
      },
    },
    async () => agentOf(api).alerts(),
  );

  app.get(
    '/api/stats',
    {
      schema: {
        tags: ['operations'],
        description: 'counters of ingest, the broker and the log; bytes written',
        response: { 200: anyObject, ...errors },
      },
    },
    async () => agentOf(api).stats(),
  );

  app.get(
    '/api/buffer',
    {
      schema: {
        tags: ['operations'],
        description: 'the durable log: size, lag per consumer, readings dropped before a consumer had them',
        response: { 200: anyObject, ...errors },
      },
    },
    async () => agentOf(api).buffer(),
  );

  app.get(
    '/api/sync',
    {
      schema: {
        tags: ['operations'],
        description: 'per sink: state, lag, age of the oldest unsent reading, throughput, time to drain, last error',
        response: { 200: { type: 'array', items: anyObject }, ...errors },
      },
    },
    async () => agentOf(api).sinks(),
  );

  app.get(
    '/api/config',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['operations'],
        description: 'the effective configuration, secrets redacted',
        response: { 200: anyObject, ...errors },
      },
    },
    async () => agentOf(api).config(),
  );

  app.post<{ Params: { sink: string } }>(
    '/api/sync/:sink/retry',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['operations'],
        description: 'try a failing sink again now instead of after its backoff',
        params: { type: 'object', properties: { sink: { type: 'string', maxLength: 200 } }, required: ['sink'] },
        response: {
          202: {
            type: 'object',
            properties: { sink: { type: 'string' }, wasFailing: { type: 'boolean' } },
            required: ['sink', 'wasFailing'],
          },
          404: errorSchema,
          ...errors,
        },
      },
    },
    async (req, reply) => {
      const wasFailing = agentOf(api).retrySink(req.params.sink);
      if (wasFailing === undefined) throw new HttpError(404, `no sink named ${req.params.sink}`);
      return reply.code(202).send({ sink: req.params.sink, wasFailing });
    },
  );

  app.post(
    '/api/config/reload',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['operations'],
        description:
          'read the config file again: a config with problems changes nothing (400 naming each key); else what took effect, and which changed keys need a restart',
        response: {
          200: {
            type: 'object',
            properties: {
              applied: { type: 'array', items: { type: 'string' } },
              restartRequired: { type: 'array', items: { type: 'string' } },
            },
            required: ['applied', 'restartRequired'],
          },
          400: errorSchema,
          ...errors,
        },
      },
    },
    async () => {
      try {
        return agentOf(api).reloadConfig();
      } catch (err) {
        if (err instanceof ConfigError) throw new HttpError(400, `the config was not reloaded: ${err.problems.join('; ')}`, err.problems);
        throw err;
      }
    },
  );

  app.get(
    '/metrics',
    {
      config: { access: publicMetrics ? 'public' : 'viewer' },
      schema: {
        tags: ['operations'],
        description: 'Prometheus metrics (text format 0.0.4)',
        response: { 200: { type: 'string' }, ...errors },
      },
    },
    async (_req, reply) => {
      return reply.type(registry.contentType).send(await registry.metrics());
    },
  );
};
