// Every error is JSON {error, message, details?} with its status; a bad parameter is named.
import { STATUS_CODES } from 'node:http';
import type {} from '@fastify/swagger';
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import type { Logger } from '../../lib/logger.js';

export interface ErrorBody {
  error: string;
  message: string;
  details?: unknown;
}

export const errorSchema = {
  type: 'object',
  properties: { error: { type: 'string' }, message: { type: 'string' }, details: {} },
  required: ['error', 'message'],
} as const;

export function sendError(reply: FastifyReply, status: number, message: string, details?: unknown): FastifyReply {
  const body: ErrorBody = { error: STATUS_CODES[status] ?? 'Error', message, ...(details !== undefined ? { details } : {}) };
  return reply.code(status).type('application/json; charset=utf-8').send(body);
}

/** A request the route refuses: its status and what the caller did wrong. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly details?: unknown,
    /** Headers the answer carries (Retry-After on a 429 or 503). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** A bad parameter: 400 naming it. */
export const badParameter = (name: string, message: string) => new HttpError(400, `${name}: ${message}`, [{ parameter: name, message }]);

interface ValidationItem {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

/** Which parameter a schema error is about: `limit` from `/limit`, `body.readings[0].topic`, a missing one from params. */
function parameterOf(context: string | undefined, v: ValidationItem): string {
  const path = v.instancePath
    .replace(/^\//, '')
    .replace(/\/(\d+)(?=\/|$)/g, '[$1]')
    .replace(/\//g, '.');
  const extra = (v.params.missingProperty ?? v.params.additionalProperty) as string | undefined;
  const name = [path, extra].filter(Boolean).join('.');
  return context === 'body' ? (name ? `body.${name}` : 'body') : name || (context ?? 'request');
}

/** Whether `deeper` names a part of `parameter` (body.a.b of body.a, body.a[0] of body.a). */
const inside = (deeper: string, parameter: string) =>
  deeper.length > parameter.length && deeper.startsWith(parameter) && '.['.includes(deeper[parameter.length]);

/**
 * A value that fits none of a union's shapes draws a complaint per shape ("must be string", "must
 * match a schema in anyOf"): where one names a part deeper inside, that one says what is wrong.
 */
function deepest<T extends { parameter: string; message: string }>(details: T[]): T[] {
  const seen = new Set<string>();
  return details.filter((d) => {
    const key = `${d.parameter}\u0000${d.message}`;
    if (seen.has(key) || details.some((o) => inside(o.parameter, d.parameter))) return false;
    seen.add(key);
    return true;
  });
}

export function installErrorHandlers(app: FastifyInstance, logger: Logger): void {
  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof HttpError) return sendError(reply.headers(err.headers), err.status, err.message, err.details);
    if (err.validation) {
      const details = deepest(
        (err.validation as ValidationItem[]).map((v) => {
          const parameter = parameterOf(err.validationContext, v);
          const extra = v.keyword === 'additionalProperties' ? ' (no such parameter)' : '';
          return { parameter, in: err.validationContext, message: `${v.message ?? 'is not valid'}${extra}` };
        }),
      );
      return sendError(reply, 400, details.map((d) => `${d.parameter}: ${d.message}`).join('; '), details);
    }
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (status >= 500) logger.error({ err: err.message, method: req.method, url: req.routeOptions.url }, 'request failed');
    // A 5xx says what failed, never how (no stack, no paths).
    return sendError(reply, status, status >= 500 ? 'the agent could not answer this request; see its log' : err.message);
  });
  app.setNotFoundHandler((req, reply) => sendError(reply, 404, `no route ${req.method} ${req.url.split('?')[0]}`));
}
