// Export of stored readings, streamed: each page is read only as the client takes the previous one.
import { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import type { FastifyPluginAsync } from 'fastify';
import { contentTypes, EXPORT_FORMATS, exportText, type ExportFormat } from '../../export/index.js';
import type { ApiSource } from '../api.js';
import { badParameter, errorSchema } from '../errors.js';
import type { Slots } from '../slots.js';
import {
  agentOf,
  askerOf,
  fieldsParam,
  listOf,
  ownerOf,
  range,
  storeOf,
  timeParam,
  topicFilter,
  topicParam,
  whereOf,
  whereParam,
} from './params.js';

interface ExportQuery {
  format: ExportFormat;
  topic: string;
  from?: string;
  to?: string;
  where?: string[];
  fields?: string[];
  order: 'asc' | 'desc';
  gzip: boolean;
  filename?: string;
}

export const exportRoutes: FastifyPluginAsync<{ api: ApiSource; slots: Slots }> = async (app, { api, slots }) => {
  app.get<{ Querystring: ExportQuery }>(
    '/api/export',
    {
      schema: {
        tags: ['data'],
        description:
          'stored readings as a download (CSV, JSON or JSON Lines, optionally gzip), streamed with flat memory however many rows',
        querystring: {
          type: 'object',
          properties: {
            format: { type: 'string', enum: [...EXPORT_FORMATS], default: 'csv' },
            topic: topicParam,
            from: timeParam('received at or after'),
            to: timeParam('received at or before'),
            where: whereParam,
            fields: fieldsParam,
            order: { type: 'string', enum: ['asc', 'desc'], default: 'asc' },
            gzip: { type: 'boolean', default: false, description: 'compress the download (.gz)' },
            filename: {
              type: 'string',
              pattern: '^[A-Za-z0-9._-]{1,100}$',
              description: 'download file name (default readings-<agent>-<time>.<format>)',
            },
          },
          additionalProperties: false,
        },
        response: {
          200: { description: 'the file', type: 'string' },
          400: errorSchema,
          401: errorSchema,
          403: errorSchema,
          409: errorSchema,
          429: errorSchema,
          503: errorSchema,
        },
      },
    },
    async (req, reply) => {
      const q = req.query;
      const store = storeOf(api);
      const fields = listOf(q.fields);
      if (fields?.some((f) => f.length > 128)) throw badParameter('fields', 'a field path is longer than 128');
      const query = { topic: topicFilter(q.topic), ...range(q), where: whereOf(q.where), order: q.order };
      // Held until the download ends or the client goes (web.limits.exports, exportsPerUser).
      reply.raw.once('close', slots.take(ownerOf(req)));
      const stamp = new Date().toISOString().replace(/[:.]/g, '-');
      const name = q.filename ?? `readings-${agentOf(api).agentId}-${stamp}.${q.format}${q.gzip ? '.gz' : ''}`;
      const text = Readable.from(exportText(store, { query, format: q.format, fields, asker: askerOf(req, reply) }), {
        objectMode: false,
        highWaterMark: 1,
      });
      reply.header('Content-Disposition', `attachment; filename="${name}"`).header('Cache-Control', 'no-store');
      if (!q.gzip) return reply.type(contentTypes[q.format]).send(text);
      return reply.type('application/gzip').send(text.pipe(createGzip()));
    },
  );
};
