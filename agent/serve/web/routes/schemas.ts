// Reading schemas: list, inspect (any kept version), create, change, delete; each change checked
// before it takes effect, swapped in without a restart, and written to the schema directory.
import type { LogRecord } from '../../../log/index.js';
import type { FastifyPluginAsync } from 'fastify';
import { SCHEMA_NAME, SchemaDocSchema } from '../../../ingest/schema-doc.js';
import { SchemaChangeError } from '../../../ingest/schema-editor.js';
import type { SchemaDoc } from '../../../ingest/schema-doc.js';
import { refusalReasons, type CompiledSchema } from '../../../ingest/schemas.js';
import type { Asker, LocalStore } from '../../../consume/store/types.js';
import type { ApiSource } from '../api.js';
import { errorSchema, HttpError } from '../errors.js';
import { agentOf, askerOf } from './params.js';

const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 409: errorSchema };

/** The document schema for request bodies: the version is optional (a change makes the next one). */
const docBody = (() => {
  const body = JSON.parse(JSON.stringify(SchemaDocSchema)) as { properties: { version: Record<string, unknown> }; required: string[] };
  delete body.properties.version.default;
  body.required = body.required.filter((k) => k !== 'version');
  return body;
})();

const summary = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    version: { type: 'integer' },
    id: { type: 'string', description: 'name@version, recorded with each reading it accepts' },
    topics: { type: 'array', items: { type: 'string' } },
    source: { type: 'string', description: 'the file it comes from, by its name in the schema folder, or "config file"' },
    editable: { type: 'boolean', description: 'false for schemas in the config file' },
  },
  required: ['name', 'version', 'id', 'topics', 'source', 'editable'],
} as const;

const nameParam = { type: 'object', properties: { name: { type: 'string', pattern: SCHEMA_NAME } }, required: ['name'] } as const;

/** How many recent readings a dry run looks at. */
const CHECKED = 1000;

const dryRunAnswer = {
  type: 'object',
  properties: {
    checked: { type: 'integer', description: 'stored readings looked at (the latest on its topics)' },
    refused: { type: 'integer', description: 'of those, how many it would refuse (dead-letter)' },
    examples: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          seq: { type: 'integer' },
          topic: { type: 'string' },
          receivedAt: { type: 'string', format: 'date-time' },
          reasons: { type: 'array', items: { type: 'object', properties: { path: { type: 'string' }, message: { type: 'string' } } } },
        },
      },
    },
    note: { type: 'string' },
  },
  required: ['checked', 'refused', 'examples'],
} as const;

/** The latest stored readings on the schema's topics, each validated as ingest would. */
async function dryRun(schema: CompiledSchema, store: LocalStore | undefined, asker: Asker) {
  if (!store) return { checked: 0, refused: 0, examples: [], note: 'no local store (store.backend none): nothing to check against' };
  const seen = new Map<number, LogRecord>();
  for (const topic of schema.topics)
    for (const r of await store.query({ topic, order: 'desc', limit: CHECKED, maxScan: 50 * CHECKED }, asker)) seen.set(r.seq, r);
  const latest = [...seen.values()].sort((a, b) => b.seq - a.seq).slice(0, CHECKED);
  const refusals = latest.flatMap((r) => {
    const reasons = reasonsFor(schema, r);
    return reasons ? [{ seq: r.seq, topic: r.topic, receivedAt: new Date(r.receivedAt).toISOString(), reasons }] : [];
  });
  return { checked: latest.length, refused: refusals.length, examples: refusals.slice(0, 10) };
}

function reasonsFor(schema: CompiledSchema, r: LogRecord) {
  if (r.encoding !== 'base64') return refusalReasons(schema, r.payload);
  try {
    return refusalReasons(schema, JSON.parse(Buffer.from(r.payload as string, 'base64').toString('utf8')));
  } catch {
    return [{ path: '/', message: 'not JSON (kept raw until now)' }];
  }
}

function asHttp(err: unknown): never {
  if (err instanceof SchemaChangeError)
    throw new HttpError(
      { invalid: 400, conflict: 409, missing: 404 }[err.kind],
      err.message,
      err.problems.length ? err.problems : undefined,
    );
  throw err;
}

export const schemaRoutes: FastifyPluginAsync<{ api: ApiSource }> = async (app, { api }) => {
  const editor = () => agentOf(api).schemas;
  const describe = (s: CompiledSchema) => editor().summary(s);

  app.get(
    '/api/schemas',
    {
      schema: { tags: ['schemas'], description: 'the schemas in effect', response: { 200: { type: 'array', items: summary }, ...errors } },
    },
    async () => editor().list().map(describe),
  );

  app.get<{ Params: { name: string }; Querystring: { version?: number } }>(
    '/api/schemas/:name',
    {
      schema: {
        tags: ['schemas'],
        description: 'a schema: its document (the current version, or the one asked for), and every version kept',
        params: nameParam,
        querystring: { type: 'object', properties: { version: { type: 'integer', minimum: 1 } }, additionalProperties: false },
        response: {
          200: {
            type: 'object',
            properties: {
              ...summary.properties,
              doc: { type: 'object', additionalProperties: true },
              versions: {
                type: 'array',
                items: { type: 'object', properties: { version: { type: 'integer' }, current: { type: 'boolean' } } },
              },
            },
            required: ['name', 'doc', 'versions'],
          },
          ...errors,
        },
      },
    },
    async (req) => {
      const { name } = req.params;
      // A removed schema's versions stay readable: its newest is shown.
      const version = req.query.version ?? (editor().current(name) ? undefined : editor().versions(name)[0]?.version);
      const view = editor().view(name, version);
      if (!view)
        throw new HttpError(
          404,
          req.query.version === undefined ? `no schema named ${name}` : `no version ${req.query.version} of schema ${name}`,
        );
      return { ...view, versions: editor().versions(name) };
    },
  );

  app.post<{ Body: SchemaDoc }>(
    '/api/schemas/check',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['schemas'],
        description: `a dry run: how many of the latest ${CHECKED} stored readings on the schema's topics it would refuse, with a few of them and why; nothing changes`,
        body: docBody,
        response: { 200: dryRunAnswer, ...errors },
      },
    },
    async (req, reply) => {
      let compiled: CompiledSchema;
      try {
        compiled = editor().compile(req.body);
      } catch (err) {
        asHttp(err);
      }
      return dryRun(compiled, agentOf(api).store, askerOf(req, reply));
    },
  );

  app.post<{ Body: SchemaDoc }>(
    '/api/schemas',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['schemas'],
        description: 'add a schema; it applies to readings from now on',
        body: docBody,
        response: { 201: summary, ...errors },
      },
    },
    async (req, reply) => {
      try {
        return reply.code(201).send(describe(editor().create(req.body)));
      } catch (err) {
        asHttp(err);
      }
    },
  );

  app.put<{ Params: { name: string }; Body: SchemaDoc }>(
    '/api/schemas/:name',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['schemas'],
        description: "change a schema: a new version (the body's if newer, else the next), in effect at once; the old one is kept",
        params: nameParam,
        body: docBody,
        response: { 200: summary, ...errors },
      },
    },
    async (req) => {
      try {
        return describe(editor().replace(req.params.name, req.body));
      } catch (err) {
        asHttp(err);
      }
    },
  );

  app.delete<{ Params: { name: string } }>(
    '/api/schemas/:name',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['schemas'],
        description: 'remove a schema (kept in the history); its topics then follow ingest.unmatched',
        params: nameParam,
        response: { 204: { type: 'null' }, ...errors },
      },
    },
    async (req, reply) => {
      try {
        editor().remove(req.params.name);
      } catch (err) {
        asHttp(err);
      }
      return reply.code(204).send();
    },
  );
};
