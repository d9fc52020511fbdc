// Parameters several routes share: their schemas (for validation and the OpenAPI document) and
// what they become.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { filterProblem } from '../../../../mqtt-topic/topic.js';
import type { Asker, FieldFilter } from '../../../consume/store/types.js';
import { parseFilter, parseTime } from '../../../consume/store/where.js';
import type { AgentApi, ApiSource } from '../api.js';
import { badParameter, HttpError } from '../errors.js';

export const topicParam = {
  type: 'string',
  minLength: 1,
  maxLength: 1024,
  default: '#',
  description: 'MQTT topic filter (+ one level, # the rest)',
} as const;
export const timeParam = (what: string) =>
  ({ type: 'string', maxLength: 40, description: `${what}: ISO 8601 time, or ms since the epoch` }) as const;
export const whereParam = {
  type: 'array',
  items: { type: 'string', maxLength: 256 },
  maxItems: 16,
  description:
    'conditions on payload fields, all of which must hold: <field><op><value>, op one of = != < <= > >=, field dotted (a.b); repeat the parameter for more',
} as const;
export const fieldsParam = {
  type: 'array',
  items: { type: 'string', minLength: 1, maxLength: 128 },
  maxItems: 64,
  description: 'payload fields (dotted paths) to keep; repeat or comma-separate',
} as const;

export function topicFilter(value: string, name = 'topic'): string {
  const problem = filterProblem(value);
  if (problem) throw badParameter(name, `not a valid MQTT topic filter: ${problem}`);
  return value;
}

export function timeOf(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const t = parseTime(value);
  if (!Number.isFinite(t)) throw badParameter(name, `${JSON.stringify(value)} is neither an ISO 8601 time nor ms since the epoch`);
  return t;
}

export function whereOf(values: string[] | undefined): FieldFilter[] {
  return (values ?? []).map((w) => {
    try {
      return parseFilter(w);
    } catch (err) {
      throw badParameter('where', (err as Error).message);
    }
  });
}

/** `a,b` and repeated parameters alike. */
export const listOf = (values: string[] | undefined) =>
  values
    ?.flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter(Boolean);

export function range(q: { from?: string; to?: string }): { from?: number; to?: number } {
  const from = timeOf(q.from, 'from');
  const to = timeOf(q.to, 'to');
  if (from !== undefined && to !== undefined && from > to) throw badParameter('from', 'is after to');
  return { from, to };
}

export function agentOf(api: ApiSource): AgentApi {
  const agent = api();
  if (!agent) throw new HttpError(503, 'the agent is starting: try again shortly');
  return agent;
}

export function storeOf(api: ApiSource) {
  const store = agentOf(api).store;
  if (!store) throw new HttpError(409, 'there is no local store (store.backend is none)');
  return store;
}

/** Whom a request works for, for caps per user: the user or API key, else the address. */
export const ownerOf = (req: FastifyRequest) => req.identity?.name ?? req.ip;

/** The store's reads for a request: in its owner's turn, stopped when its client goes. */
export const askerOf = (req: FastifyRequest, reply: FastifyReply): Asker => ({ name: ownerOf(req), signal: goneSignal(reply) });

const signals = new WeakMap<FastifyReply, AbortSignal>();

/** Aborted when the client goes before its answer was sent: the work for it stops (one per reply). */
export function goneSignal(reply: FastifyReply): AbortSignal {
  let signal = signals.get(reply);
  if (!signal) {
    const gone = new AbortController();
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) gone.abort(new Error('the client has gone'));
    });
    signal = gone.signal;
    signals.set(reply, signal);
  }
  return signal;
}
