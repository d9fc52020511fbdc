// Dead letters: list with filters, inspect, replay (checked again against the schema in effect now,
// and taken if it passes), purge.
import type { DeadLetter } from '../../../log/index.js';
import type { FastifyPluginAsync } from 'fastify';
import { topicMatches } from '../../../../mqtt-topic/topic.js';
import type { ApiSource } from '../api.js';
import { errorSchema, HttpError } from '../errors.js';
import { replay } from '../operations.js';
import { agentOf, range, timeParam, topicFilter } from './params.js';

const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 409: errorSchema, 503: errorSchema };

const letter = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    time: { type: 'integer', description: 'when it was refused, ms since the epoch' },
    topic: { type: 'string' },
    clientId: { type: 'string' },
    payload: { type: 'string', description: 'the payload as received, base64 (cut at ingest.deadLetters.payloadCapBytes)' },
    payloadText: { type: 'string', description: 'the payload as text, when it is UTF-8' },
    payloadBytes: { type: 'integer' },
    truncated: { type: 'boolean' },
    reasons: { type: 'array', items: { type: 'object', properties: { path: { type: 'string' }, message: { type: 'string' } } } },
    consumer: { type: 'string', description: 'set when a consumer (store, sink) refused a reading after it was accepted' },
    seq: { type: 'integer' },
  },
  required: ['id', 'time', 'topic', 'payload', 'reasons'],
} as const;

interface Filter {
  topic?: string;
  from?: string;
  to?: string;
  reason?: string;
  consumer?: string;
}

const filterProps = {
  topic: { type: 'string', minLength: 1, maxLength: 1024, description: 'MQTT topic filter' },
  from: timeParam('refused at or after'),
  to: timeParam('refused at or before'),
  reason: { type: 'string', minLength: 1, maxLength: 200, description: 'text a reason holds (case-insensitive)' },
  consumer: {
    type: 'string',
    minLength: 1,
    maxLength: 200,
    description: 'refused by this consumer after acceptance (ingest: refused at ingest)',
  },
} as const;

function matcher(f: Filter): (d: DeadLetter) => boolean {
  const topic = f.topic === undefined ? undefined : topicFilter(f.topic);
  const { from, to } = range(f);
  const reason = f.reason?.toLowerCase();
  return (d) =>
    (topic === undefined || topicMatches(topic, d.topic)) &&
    (from === undefined || d.time >= from) &&
    (to === undefined || d.time <= to) &&
    (reason === undefined || d.reasons.some((r) => `${r.path} ${r.message}`.toLowerCase().includes(reason))) &&
    (f.consumer === undefined || (f.consumer === 'ingest' ? !d.consumer : d.consumer === f.consumer));
}

function withText(d: DeadLetter): DeadLetter & { payloadText?: string } {
  const bytes = Buffer.from(d.payload, 'base64');
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  return text.includes('\uFFFD') ? d : { ...d, payloadText: text };
}

/** Scan limits: a replay or purge by filter takes at most this many a request. */
const BATCH = 1000;

export const deadLetterRoutes: FastifyPluginAsync<{ api: ApiSource }> = async (app, { api }) => {
  const letters = () => agentOf(api).deadLetters;

  app.get<{ Querystring: Filter & { limit: number; cursor?: number } }>(
    '/api/dead-letters',
    {
      schema: {
        tags: ['dead letters'],
        description: 'refused readings, newest first, with every reason; follow `next` for older ones',
        querystring: {
          type: 'object',
          properties: {
            ...filterProps,
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
            cursor: { type: 'integer', minimum: 0, description: '`next` of the previous page' },
          },
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            properties: { deadLetters: { type: 'array', items: letter }, next: { type: ['integer', 'null'] } },
            required: ['deadLetters', 'next'],
          },
          ...errors,
        },
      },
    },
    async (req) => {
      const page = await letters().deadLetters(req.query.limit, req.query.cursor, matcher(req.query));
      return { deadLetters: page.map(withText), next: page.length === req.query.limit ? page.at(-1)!.id : null };
    },
  );

  app.get<{ Params: { id: number } }>(
    '/api/dead-letters/:id',
    {
      schema: {
        tags: ['dead letters'],
        description: 'one dead letter',
        params: { type: 'object', properties: { id: { type: 'integer', minimum: 0 } }, required: ['id'] },
        response: { 200: letter, ...errors },
      },
    },
    async (req) => {
      const d = await letters().deadLetter(req.params.id);
      if (!d) throw new HttpError(404, `no dead letter ${req.params.id}`);
      return withText(d);
    },
  );

  app.post<{ Body: Filter & { ids?: number[] } }>(
    '/api/dead-letters/replay',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['dead letters'],
        description: `check dead letters again against the schemas in effect now: those that pass are taken (and leave the dead letters), the rest stay with their new reasons. By ids, or by filter (up to ${BATCH} a request)`,
        body: {
          type: 'object',
          properties: { ids: { type: 'array', items: { type: 'integer', minimum: 0 }, minItems: 1, maxItems: BATCH }, ...filterProps },
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            properties: {
              replayed: { type: 'array', items: { type: 'object', properties: { id: { type: 'integer' }, seq: { type: 'integer' } } } },
              refused: {
                type: 'array',
                items: { type: 'object', properties: { id: { type: 'integer' }, reasons: letter.properties.reasons } },
              },
              skipped: { type: 'array', items: { type: 'object', properties: { id: { type: 'integer' }, why: { type: 'string' } } } },
            },
            required: ['replayed', 'refused', 'skipped'],
          },
          ...errors,
        },
      },
    },
    async (req) => {
      const agent = agentOf(api);
      const { ids, ...filter } = req.body ?? {};
      const chosen = ids
        ? (await Promise.all(ids.map((id) => letters().deadLetter(id)))).filter((d): d is DeadLetter => d !== undefined)
        : await letters().deadLetters(BATCH, undefined, matcher(filter));
      if (ids && chosen.length < ids.length)
        throw new HttpError(404, `no dead letter ${ids.filter((id) => !chosen.some((d) => d.id === id)).join(', ')}`);
      return replay(agent, chosen);
    },
  );

  app.delete<{ Params: { id: number } }>(
    '/api/dead-letters/:id',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['dead letters'],
        description: 'purge one dead letter',
        params: { type: 'object', properties: { id: { type: 'integer', minimum: 0 } }, required: ['id'] },
        response: { 204: { type: 'null' }, ...errors },
      },
    },
    async (req, reply) => {
      if (!(await letters().removeDeadLetters([req.params.id]))) throw new HttpError(404, `no dead letter ${req.params.id}`);
      return reply.code(204).send();
    },
  );

  app.delete<{ Querystring: Filter }>(
    '/api/dead-letters',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['dead letters'],
        description: 'purge the dead letters a filter takes (topic is required: # for all)',
        querystring: { type: 'object', properties: filterProps, required: ['topic'], additionalProperties: false },
        response: { 200: { type: 'object', properties: { purged: { type: 'integer' } }, required: ['purged'] }, ...errors },
      },
    },
    async (req) => {
      const matches = matcher(req.query);
      let purged = 0;
      for (;;) {
        const page = await letters().deadLetters(BATCH, undefined, matches);
        if (!page.length) break;
        purged += await letters().removeDeadLetters(page.map((d) => d.id));
        if (page.length < BATCH) break;
      }
      return { purged };
    },
  );
};
