// Readings: a page of them (filters, cursor paging), aggregates per time bucket (from the rollups
// where they are kept, else computed from the store), HTTP ingest, and deletion (admin).
import type { FastifyPluginAsync } from 'fastify';
import type { Histogram } from 'prom-client';
import type { ApiSource } from '../api.js';
import { badParameter, errorSchema, HttpError } from '../errors.js';
import { aggregate, deleteReadings, readingsPage, STATS, type Operations } from '../operations.js';
import { agentOf, fieldsParam, askerOf, timeParam, topicParam, whereParam } from './params.js';

export interface DataRouteOptions {
  api: ApiSource;
  pageRows: number;
  queryDuration: Histogram<'source'>;
  scanReadings: number;
}

const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 409: errorSchema, 503: errorSchema };

const reading = {
  type: 'object',
  properties: {
    seq: { type: 'integer' },
    agentId: { type: 'string' },
    topic: { type: 'string' },
    receivedAt: { type: 'integer', description: 'ms since the epoch' },
    clockSynced: { type: 'boolean' },
    clockCorrectionMs: { type: 'integer', description: 'set when receivedAt was corrected after the clock synchronised: by how much' },
    deviceTime: { type: 'integer' },
    payload: {},
    encoding: { type: 'string' },
    clientId: { type: 'string' },
    schema: { type: 'string' },
    qos: { type: 'integer' },
  },
  required: ['seq', 'topic', 'receivedAt', 'payload'],
} as const;

export const dataRoutes: FastifyPluginAsync<DataRouteOptions> = async (app, { api, pageRows, queryDuration, scanReadings }) => {
  const ops: Operations = { api, queryDuration, scanReadings };
  app.get<{
    Querystring: { topic: string; from?: string; to?: string; where?: string[]; limit: number; cursor?: string; order: 'asc' | 'desc' };
  }>(
    '/api/data',
    {
      schema: {
        tags: ['data'],
        description:
          'stored readings, a page at a time: follow `next` until it is null (a page whose conditions match few readings may end with fewer than limit once it looked at web.limits.scanReadings of them; its next goes on from there)',
        querystring: {
          type: 'object',
          properties: {
            topic: topicParam,
            from: timeParam('received at or after'),
            to: timeParam('received at or before'),
            where: whereParam,
            limit: { type: 'integer', minimum: 1, maximum: pageRows, default: 100 },
            cursor: { type: 'string', maxLength: 200, description: '`next` of the previous page' },
            order: { type: 'string', enum: ['asc', 'desc'], default: 'asc', description: 'by receive time, then seq (the order received)' },
          },
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            properties: {
              readings: { type: 'array', items: reading },
              next: { type: ['string', 'null'] },
              hint: { type: 'string', description: 'why an empty answer may not be what was meant (a topic filter cut at #)' },
            },
            required: ['readings', 'next'],
          },
          ...errors,
        },
      },
    },
    async (req, reply) => readingsPage(ops, req.query, askerOf(req, reply)),
  );

  app.get<{ Querystring: { topic: string; bucket: string; from?: string; to?: string; fields?: string[]; stats?: string[] } }>(
    '/api/data/aggregate',
    {
      schema: {
        tags: ['data'],
        description:
          'per time bucket and numeric field: count, min, max, sum, mean, stddev, last; from the rollups where they keep the bucket width, else computed from the stored readings',
        querystring: {
          type: 'object',
          properties: {
            topic: topicParam,
            bucket: {
              type: 'string',
              pattern: '^[1-9][0-9]{0,3}(m|h|d)$',
              default: '1h',
              description: 'bucket width, 1m to 1d (e.g. 1m, 5m, 1h, 1d)',
            },
            from: timeParam('buckets starting at or after'),
            to: timeParam('buckets starting at or before'),
            fields: fieldsParam,
            stats: {
              type: 'array',
              items: { type: 'string', enum: [...STATS] },
              maxItems: STATS.length,
              description: `which statistics (default all): ${STATS.join(', ')}`,
            },
          },
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            properties: {
              bucket: { type: 'string' },
              source: { type: 'string', enum: ['rollups', 'store'] },
              series: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    topic: { type: 'string' },
                    tags: { type: 'object', additionalProperties: { type: 'string' } },
                    field: { type: 'string' },
                    unit: { type: 'string', description: "the field's unit, as its schema says" },
                    counter: {
                      type: 'boolean',
                      description: 'the field only counts up (declared or named so): charts leave it off by default',
                    },
                    points: {
                      type: 'array',
                      items: {
                        type: 'object',
                        properties: {
                          start: { type: 'integer' },
                          ...Object.fromEntries(STATS.map((s) => [s, { type: ['number', 'null'] }])),
                        },
                        required: ['start'],
                      },
                    },
                  },
                  required: ['topic', 'field', 'points'],
                },
              },
            },
            required: ['bucket', 'source', 'series'],
          },
          ...errors,
        },
      },
    },
    async (req, reply) => aggregate(ops, req.query, askerOf(req, reply)),
  );

  const inReading = {
    type: 'object',
    properties: {
      topic: { type: 'string', minLength: 1, maxLength: 1024 },
      payload: { description: 'the reading, as an MQTT payload would carry it (JSON)' },
      clientId: {
        type: 'string',
        maxLength: 128,
        description: 'the device it came from: recorded as http:<caller>:<clientId>, never as an MQTT client id',
      },
    },
    required: ['topic', 'payload'],
    additionalProperties: false,
  } as const;
  app.post<{
    Body: { topic: string; payload: unknown; clientId?: string } | { readings: { topic: string; payload: unknown; clientId?: string }[] };
  }>(
    '/api/data',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['data'],
        description:
          'ingest readings over HTTP, through the same validation and durable log as MQTT: answers 201 once they are on disk; 422 with every reason if any fails (then none is taken)',
        body: {
          oneOf: [
            inReading,
            {
              type: 'object',
              properties: { readings: { type: 'array', items: inReading, minItems: 1, maxItems: 10000 } },
              required: ['readings'],
              additionalProperties: false,
            },
          ],
        },
        response: {
          201: {
            type: 'object',
            properties: { accepted: { type: 'integer' }, seqs: { type: 'array', items: { type: 'integer' } } },
            required: ['accepted', 'seqs'],
          },
          422: errorSchema,
          ...errors,
        },
      },
    },
    async (req, reply) => {
      const readings = 'readings' in req.body ? req.body.readings : [req.body];
      readings.forEach((r, i) => {
        const at = 'readings' in req.body ? `body.readings[${i}].topic` : 'body.topic';
        if (/[+#\u0000]/.test(r.topic)) throw badParameter(at, 'a topic name holds no wildcards (+, #) or NUL');
        if (r.topic.startsWith('$')) throw badParameter(at, 'topics starting with $ are reserved');
        const problem = agentOf(api).topicProblem(r.topic);
        if (problem) throw badParameter(at, `${problem} (broker.limits), as over MQTT`);
      });
      const who = req.identity!.name;
      const outcome = await agentOf(api).submit(
        readings.map((r) => ({
          topic: r.topic,
          payload: Buffer.from(JSON.stringify(r.payload)),
          qos: 1,
          retain: false,
          clientId: r.clientId === undefined ? `http:${who}` : `http:${who}:${r.clientId}`,
          username: who,
        })),
      );
      if (outcome.taken) return reply.code(201).send({ accepted: outcome.seqs.length, seqs: outcome.seqs });
      if ('unavailable' in outcome) throw new HttpError(503, outcome.unavailable);
      const details = outcome.refused.map((r) => ({ index: r.index, topic: readings[r.index].topic, reasons: r.reasons }));
      throw new HttpError(
        422,
        `${details.length} of ${readings.length} readings failed validation; none was taken: ${details[0].reasons.map((x) => `${x.path} ${x.message}`).join('; ')}`,
        details,
      );
    },
  );

  app.delete<{ Querystring: { topic: string; from?: string; to?: string } }>(
    '/api/data',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['data'],
        description: 'delete stored readings by topic filter and time range (from the local store; what sinks already have stays there)',
        querystring: {
          type: 'object',
          properties: {
            topic: {
              type: 'string',
              minLength: 1,
              maxLength: 1024,
              description: 'MQTT topic filter of the readings to delete (# for all)',
            },
            from: timeParam('received at or after'),
            to: timeParam('received at or before'),
          },
          required: ['topic'],
          additionalProperties: false,
        },
        response: { 200: { type: 'object', properties: { deleted: { type: 'integer' } }, required: ['deleted'] }, ...errors },
      },
    },
    async (req) => {
      const deleted = await deleteReadings(ops, req.query);
      req.log.info({ audit: true, user: req.identity!.name, ...req.query, deleted }, 'readings deleted');
      return { deleted };
    },
  );
};
