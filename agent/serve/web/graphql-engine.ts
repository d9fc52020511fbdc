// The GraphQL schema behind /graphql (graphql.ts loads this module when first asked, so an agent
// nobody queries with GraphQL does not hold graphql-js): readings, aggregates, schemas, dead letters
// and sync status; the same changes as the REST API; live readings as a subscription
// (graphql-transport-ws). Same credentials and roles (the request's identity), with depth and cost limits.
import {
  buildSchema,
  execute,
  getOperationAST,
  GraphQLError,
  parse,
  specifiedRules,
  subscribe,
  validate,
  valueFromASTUntyped,
  type DocumentNode,
  type ExecutionResult,
  type FragmentDefinitionNode,
  type GraphQLObjectType,
  type GraphQLScalarType,
  type SelectionSetNode,
  type ValidationRule,
} from 'graphql';
import { createComplexityRule, simpleEstimator, type ComplexityEstimator } from 'graphql-query-complexity';
import { CloseCode, makeServer } from 'graphql-ws';
import type { WebSocket } from 'ws';
import { filterProblem, topicMatches } from '../../../mqtt-topic/topic.js';
import { durationMs } from '../../config/keys.js';
import { SchemaChangeError } from '../../ingest/schema-editor.js';
import type { SchemaDoc } from '../../ingest/schema-doc.js';
import type { CompiledSchema } from '../../ingest/schemas.js';
import { mayAct, type WebRole } from '../../users/roles.js';
import type { ApiSource } from './api.js';
import type { Asker } from '../../consume/store/types.js';
import type { Identity } from './auth/authenticate.js';
import { HttpError } from './errors.js';
import type { LiveClient } from './live.js';
import { aggregate, deleteReadings, readingsPage, replay, type Operations } from './operations.js';
import { agentOf } from './routes/params.js';

const typeDefs = /* GraphQL */ `
  scalar JSON

  enum Order {
    asc
    desc
  }

  type Reading {
    seq: Float!
    agentId: String
    topic: String!
    receivedAt: Float!
    clockSynced: Boolean
    clockCorrectionMs: Float
    deviceTime: Float
    payload: JSON
    clientId: String
    schema: String
    qos: Int
  }

  type ReadingPage {
    readings: [Reading!]!
    next: String
  }

  type Point {
    start: Float!
    count: Float
    min: Float
    max: Float
    sum: Float
    mean: Float
    stddev: Float
    last: Float
  }

  type Series {
    topic: String!
    tags: JSON
    field: String!
    points: [Point!]!
  }

  type Aggregate {
    bucket: String!
    source: String!
    series: [Series!]!
  }

  type Schema {
    name: String!
    version: Int!
    id: String!
    topics: [String!]!
    source: String!
    editable: Boolean!
    doc: JSON
  }

  type Reason {
    path: String!
    message: String!
  }

  type DeadLetter {
    id: Int!
    time: Float!
    topic: String!
    clientId: String
    payload: String!
    payloadBytes: Int
    truncated: Boolean
    reasons: [Reason!]!
    consumer: String
  }

  type SinkStatus {
    name: String!
    type: String!
    state: String!
    since: String!
    lagRecords: Float!
    oldestUnsentMs: Float!
    recordsPerSec: Float!
    drainEtaSec: Float
    lastError: String
  }

  type Replayed {
    id: Int!
    seq: Float!
  }

  type Refused {
    id: Int!
    reasons: [Reason!]!
  }

  type Skipped {
    id: Int!
    why: String!
  }

  type ReplayResult {
    replayed: [Replayed!]!
    refused: [Refused!]!
    skipped: [Skipped!]!
  }

  type Query {
    readings(topic: String = "#", from: String, to: String, where: [String!], limit: Int = 100, cursor: String, order: Order = asc): ReadingPage!
    aggregate(topic: String = "#", bucket: String = "1h", from: String, to: String, fields: [String!], stats: [String!]): Aggregate!
    schemas: [Schema!]!
    schema(name: String!, version: Int): Schema
    deadLetters(topic: String, limit: Int = 100, cursor: Int): [DeadLetter!]!
    sync: [SinkStatus!]!
  }

  type Mutation {
    "add a schema, or change it (a new version)"
    putSchema(doc: JSON!): Schema!
    deleteSchema(name: String!): Boolean!
    replayDeadLetters(ids: [Int!]!): ReplayResult!
    "readings deleted from the local store"
    deleteReadings(topic: String!, from: String, to: String): Float!
  }

  type Subscription {
    readings(topics: [String!]!, fields: [String!]): Reading!
  }
`;

/** What resolvers see: who asks, and (over HTTP) a signal for a client that went away. */
export type Context = { identity: Identity | null; signal?: AbortSignal };

const JSON_SCALAR = {
  description: 'any JSON value',
  serialize: (v: unknown) => v,
  parseValue: (v: unknown) => v,
  parseLiteral: valueFromASTUntyped,
};

/** An HTTP-style refusal as a GraphQL error, with its status and parameters in extensions. */
function asGraphQL(err: unknown): never {
  if (err instanceof SchemaChangeError)
    throw new GraphQLError(err.message, { extensions: { code: err.kind.toUpperCase(), problems: err.problems } });
  if (err instanceof HttpError)
    throw new GraphQLError(err.message, { extensions: { code: 'BAD_REQUEST', status: err.status, details: err.details } });
  if (err instanceof GraphQLError) throw err;
  // Anything else is ours, not the caller's: its message (a file's path, say) goes to the log only.
  throw new GraphQLError('internal error (the agent logged it)', {
    originalError: err as Error,
    extensions: { code: 'INTERNAL_SERVER_ERROR', status: 500 },
  });
}

/** The errors of a result the agent caused, with what they hid, for its log. */
function internalErrors(result: ExecutionResult): Error[] {
  return (result.errors ?? []).flatMap((e) => (e.extensions.code === 'INTERNAL_SERVER_ERROR' && e.originalError ? [e.originalError] : []));
}

function need(ctx: Context, role: WebRole): void {
  if (!ctx.identity) throw new GraphQLError('credentials required', { extensions: { code: 'UNAUTHENTICATED', status: 401 } });
  if (!mayAct(ctx.identity.role, role))
    throw new GraphQLError(`this needs the ${role} role; ${ctx.identity.name} has ${ctx.identity.role}`, {
      extensions: { code: 'FORBIDDEN', status: 403 },
    });
}

/** Guarded resolver: the role first, then the work (for the asker), errors in GraphQL's terms. */
const guarded =
  <A, R>(role: WebRole, work: (args: A, asker: Asker) => Promise<R> | R) =>
  async (_root: unknown, args: A, ctx: Context): Promise<R> => {
    need(ctx, role);
    try {
      return await work(args, { name: ctx.identity!.name, signal: ctx.signal });
    } catch (err) {
      asGraphQL(err);
    }
  };

/** Live readings for one subscription, queued until taken; bounded like the other live clients. */
class ReadingStream implements AsyncIterableIterator<{ readings: unknown }>, LiveClient {
  readonly subscriptions: Map<string, string[] | undefined>;
  private readonly queue: string[] = [];
  private bytes = 0;
  private waiting: ((r: IteratorResult<{ readings: unknown }>) => void) | undefined;
  private ended: Error | null | undefined;

  constructor(
    topics: string[],
    fields: string[] | undefined,
    private readonly onEnd: (stream: ReadingStream) => void,
  ) {
    this.subscriptions = new Map(topics.map((t) => [t, fields]));
  }

  buffered = () => this.bytes;

  send(texts: readonly string[]): void {
    for (const text of texts) this.take(text);
  }

  private take(text: string): void {
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = undefined;
      return w({ value: this.decode(text), done: false });
    }
    this.queue.push(text);
    this.bytes += text.length;
  }

  tooSlow(bytes: number): void {
    this.ended = new GraphQLError(`too slow: ${bytes} bytes waiting; subscribe again`, { extensions: { code: 'TOO_SLOW' } });
    this.waiting?.({ value: undefined, done: true });
  }

  private decode(text: string) {
    return { readings: JSON.parse(text) as unknown };
  }

  next(): Promise<IteratorResult<{ readings: unknown }>> {
    const text = this.queue.shift();
    if (text !== undefined) {
      this.bytes -= text.length;
      return Promise.resolve({ value: this.decode(text), done: false });
    }
    if (this.ended) return Promise.reject(this.ended);
    if (this.ended === null) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => (this.waiting = resolve));
  }

  return(): Promise<IteratorResult<{ readings: unknown }>> {
    this.ended ??= null;
    this.onEnd(this);
    this.waiting?.({ value: undefined, done: true });
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator]() {
    return this;
  }
}

/**
 * A field that may look at up to web.limits.scanReadings stored readings costs what it may scan, a
 * point a thousand (each alias counts): readings with conditions on payload fields or a topic
 * pattern other than #, an aggregate whose width the rollups do not keep (it folds the store).
 */
function scanEstimator(scanReadings: number, rollupWidths: () => number[]): ComplexityEstimator {
  const scanCost = Math.ceil(scanReadings / 1000);
  return ({ field, args, childComplexity }) => {
    if (field.name === 'readings' && !('topics' in args)) {
      const topic = typeof args.topic === 'string' ? args.topic : '#';
      if ((Array.isArray(args.where) && args.where.length > 0) || (topic !== '#' && /[+#]/.test(topic))) return scanCost + childComplexity;
    }
    if (field.name === 'aggregate') {
      const bucket = typeof args.bucket === 'string' ? args.bucket : '1h';
      if (!/^[1-9][0-9]{0,3}[mhd]$/.test(bucket) || !rollupWidths().includes(durationMs(bucket))) return scanCost + childComplexity;
    }
    return undefined;
  };
}

/** A list's cost grows with the page it asks for. */
const pageEstimator: ComplexityEstimator = ({ args, childComplexity }) =>
  typeof args.limit === 'number' ? Math.ceil(args.limit / 100) * (childComplexity + 1) : undefined;

export interface EngineOptions {
  api: ApiSource;
  ops: Operations;
  heartbeatMs: number;
  maxDepth: number;
  maxCost: number;
}

type Resolver = (root: unknown, args: never, ctx: Context) => unknown;
type Resolvers = Record<'Query' | 'Mutation', Record<string, Resolver>> & { Subscription: Record<string, { subscribe: Resolver }> };

/** What an answer over HTTP is: its status and body. */
export interface HttpAnswer {
  status: number;
  body: ExecutionResult | { errors: readonly GraphQLError[] | { message: string }[] };
  /** What the agent's own failures hid from the caller, for the log. */
  internal?: Error[];
}

export interface GraphqlEngine {
  /** One request over HTTP (GET: queries only). */
  http(
    request: { query?: unknown; variables?: unknown; operationName?: unknown },
    method: 'GET' | 'POST',
    ctx: Context,
  ): Promise<HttpAnswer>;
  /** Subscriptions over a WebSocket (graphql-transport-ws); `early`: messages that came before this was loaded. */
  serve(socket: WebSocket, identity: Identity | null, early: string[]): void;
}

/** Refuses an operation nested deeper than `max` fields (fragments followed). */
function depthRule(max: number): ValidationRule {
  return (context) => {
    const fragments = new Map<string, FragmentDefinitionNode>();
    for (const d of context.getDocument().definitions) if (d.kind === 'FragmentDefinition') fragments.set(d.name.value, d);
    const depth = (set: SelectionSetNode | undefined, seen: Set<string>): number => {
      let deepest = 0;
      for (const s of set?.selections ?? []) {
        if (s.kind === 'Field') deepest = Math.max(deepest, 1 + depth(s.selectionSet, seen));
        else if (s.kind === 'InlineFragment') deepest = Math.max(deepest, depth(s.selectionSet, seen));
        else if (!seen.has(s.name.value))
          deepest = Math.max(deepest, depth(fragments.get(s.name.value)?.selectionSet, new Set([...seen, s.name.value])));
      }
      return deepest;
    };
    return {
      OperationDefinition(node) {
        const d = depth(node.selectionSet, new Set());
        if (d > max)
          context.reportError(
            new GraphQLError(
              `${node.name ? `operation ${node.name.value}` : 'the operation'} is ${d} fields deep: it exceeds the query depth limit of ${max}`,
              { nodes: [node] },
            ),
          );
      },
    };
  };
}

const refusal = (message: string) => ({ errors: [{ message }] });

/** Refused documents remembered, the oldest forgotten first; only short ones (at most 64 x 16 kB held). */
const REFUSALS_KEPT = 64;
const REFUSAL_KEY_CHARS = 16 * 1024;

export function createGraphqlEngine(opts: EngineOptions): GraphqlEngine {
  const { api, ops } = opts;
  const describe = (s: CompiledSchema) => agentOf(api).schemas.summary(s);
  const resolvers: Resolvers = {
    Query: {
      readings: guarded('viewer', (a: Parameters<typeof readingsPage>[1], asker) =>
        readingsPage(ops, { ...a, limit: Math.min(a.limit, 10_000) }, asker),
      ),
      aggregate: guarded('viewer', (a: Parameters<typeof aggregate>[1], asker) => aggregate(ops, a, asker)),
      schemas: guarded('viewer', () => agentOf(api).schemas.list().map(describe)),
      schema: guarded(
        'viewer',
        ({ name, version }: { name: string; version?: number }) => agentOf(api).schemas.view(name, version ?? undefined) ?? null,
      ),
      deadLetters: guarded('viewer', async ({ topic, limit, cursor }: { topic?: string; limit: number; cursor?: number }) => {
        if (topic && filterProblem(topic)) throw new HttpError(400, `topic: not a valid topic filter: ${filterProblem(topic)}`);
        return agentOf(api).deadLetters.deadLetters(
          Math.min(limit, 1000),
          cursor ?? undefined,
          (d) => !topic || topicMatches(topic, d.topic),
        );
      }),
      sync: guarded('viewer', async () => (await agentOf(api).sinks()).map((s) => ({ ...s, lastError: s.lastError?.message }))),
    },
    Mutation: {
      putSchema: guarded('operator', ({ doc }: { doc: SchemaDoc }) => {
        if (!doc || typeof doc !== 'object' || typeof doc.name !== 'string') throw new HttpError(400, 'doc: a schema document with a name');
        const editor = agentOf(api).schemas;
        return describe(editor.current(doc.name) ? editor.replace(doc.name, doc) : editor.create(doc));
      }),
      deleteSchema: guarded('operator', ({ name }: { name: string }) => {
        agentOf(api).schemas.remove(name);
        return true;
      }),
      replayDeadLetters: guarded('operator', async ({ ids }: { ids: number[] }) => {
        const agent = agentOf(api);
        const letters = (await Promise.all(ids.slice(0, 1000).map((id) => agent.deadLetters.deadLetter(id)))).filter(
          (d) => d !== undefined,
        );
        return replay(agent, letters);
      }),
      deleteReadings: guarded('admin', (a: { topic: string; from?: string; to?: string }) =>
        deleteReadings(ops, { topic: a.topic, from: a.from ?? undefined, to: a.to ?? undefined }),
      ),
    },
    Subscription: {
      readings: {
        subscribe: async (_root: unknown, { topics, fields }: { topics: string[]; fields?: string[] }, ctx: Context) => {
          need(ctx, 'viewer');
          const bad = topics.find((t) => filterProblem(t));
          if (bad !== undefined || topics.length === 0 || topics.length > 32)
            throw new GraphQLError(
              `topics: 1 to 32 valid topic filters${bad !== undefined ? `; ${JSON.stringify(bad)}: ${filterProblem(bad)}` : ''}`,
              { extensions: { code: 'BAD_REQUEST' } },
            );
          const hub = agentOf(api).live;
          const stream = new ReadingStream(topics, fields ?? undefined, (s) => hub.remove(s));
          const refused = hub.add(stream, ctx.identity!.name);
          if (refused)
            throw new GraphQLError(refused, {
              extensions: { code: refused === 'too many live clients' ? 'UNAVAILABLE' : 'TOO_MANY_REQUESTS' },
            });
          return stream;
        },
      },
    },
  };

  const schema = buildSchema(typeDefs);
  Object.assign(schema.getType('JSON') as GraphQLScalarType, JSON_SCALAR);
  for (const [type, fields] of Object.entries(resolvers)) {
    const defined = (schema.getType(type) as GraphQLObjectType).getFields();
    for (const [name, resolver] of Object.entries(fields)) {
      if (typeof resolver === 'function') defined[name].resolve = resolver as never;
      else defined[name].subscribe = resolver.subscribe as never;
    }
  }
  const limitRules = (variables: Record<string, unknown> | undefined) => [
    depthRule(opts.maxDepth),
    createComplexityRule({
      maximumComplexity: opts.maxCost,
      variables,
      estimators: [
        scanEstimator(ops.scanReadings, () => api()?.rollups?.widths ?? []),
        pageEstimator,
        simpleEstimator({ defaultComplexity: 1 }),
      ],
    }),
  ];
  // A refused document sent again (the same text, variables and rollup widths) is refused from here,
  // without parsing or validating it again: a client repeating an over-limit query costs little.
  const refused = new Map<string, readonly GraphQLError[]>();
  /** The document, checked against the limits (cheap, first) and the schema; or the errors that refuse it. */
  const check = (query: string, variables: Record<string, unknown> | undefined): DocumentNode | readonly GraphQLError[] => {
    const key = `${JSON.stringify(api()?.rollups?.widths ?? [])}\0${JSON.stringify(variables ?? null)}\0${query}`;
    const known = refused.get(key);
    if (known) return known;
    let document: DocumentNode | undefined;
    let errors: readonly GraphQLError[];
    try {
      document = parse(query);
      errors = validate(schema, document, limitRules(variables));
      if (!errors.length) errors = validate(schema, document, specifiedRules);
    } catch (err) {
      errors = [err as GraphQLError];
    }
    if (!errors.length) return document!;
    if (key.length <= REFUSAL_KEY_CHARS) {
      if (refused.size >= REFUSALS_KEPT) refused.delete(refused.keys().next().value!);
      refused.set(key, errors);
    }
    return errors;
  };

  const subscriptions = makeServer<Record<string, unknown> | undefined, { identity: Identity | null }>({
    schema,
    execute,
    subscribe,
    onSubscribe: (ctx, _id, payload) => {
      const checked = check(payload.query, payload.variables ?? undefined);
      if (Array.isArray(checked)) return checked;
      return {
        schema,
        document: checked as DocumentNode,
        variableValues: payload.variables,
        operationName: payload.operationName,
        contextValue: { identity: ctx.extra.identity } satisfies Context,
      };
    },
  });

  return {
    async http(request, method, ctx) {
      const { query, operationName } = request;
      if (typeof query !== 'string') return { status: 400, body: refusal('query: a GraphQL document, as text') };
      if (operationName !== undefined && operationName !== null && typeof operationName !== 'string')
        return { status: 400, body: refusal('operationName: text') };
      let variables: unknown = request.variables ?? undefined;
      if (typeof variables === 'string') {
        try {
          variables = JSON.parse(variables) as unknown;
        } catch {
          return { status: 400, body: refusal('variables: not JSON') };
        }
      }
      if (variables !== undefined && (typeof variables !== 'object' || variables === null || Array.isArray(variables)))
        return { status: 400, body: refusal('variables: an object') };
      const checked = check(query, variables as Record<string, unknown> | undefined);
      if (Array.isArray(checked)) return { status: 400, body: { errors: checked } };
      const document = checked as DocumentNode;
      const operation = getOperationAST(document, operationName ?? undefined);
      if (!operation)
        return {
          status: 400,
          body: refusal(
            operationName
              ? `operationName: no operation ${operationName} in the document`
              : 'operationName: the document has several operations; name one',
          ),
        };
      if (operation.operation === 'subscription')
        return { status: 400, body: refusal('a subscription is made over a WebSocket on /graphql (graphql-transport-ws)') };
      if (method === 'GET' && operation.operation !== 'query') return { status: 405, body: refusal(`a ${operation.operation} needs POST`) };
      const result = await execute({
        schema,
        document,
        variableValues: variables as Record<string, unknown> | undefined,
        operationName: operationName ?? undefined,
        contextValue: ctx,
      });
      return { status: 200, body: result, internal: internalErrors(result) };
    },

    serve(socket, identity, early) {
      // Pings keep the connection known alive through proxies; a peer that stops answering is dropped.
      let pongWait: NodeJS.Timeout | undefined;
      const pings = setInterval(() => {
        if (socket.readyState !== socket.OPEN || pongWait) return;
        pongWait = setTimeout(() => socket.terminate(), opts.heartbeatMs);
        socket.ping();
      }, opts.heartbeatMs);
      socket.on('pong', () => {
        clearTimeout(pongWait);
        pongWait = undefined;
      });
      const closed = subscriptions.opened(
        {
          protocol: socket.protocol,
          send: (data) =>
            new Promise<void>((resolve, reject) =>
              socket.readyState === socket.OPEN ? socket.send(data, (err) => (err ? reject(err) : resolve())) : resolve(),
            ),
          close: (code, reason) => socket.close(code, reason),
          onMessage: (handle) => {
            const take = (text: string) =>
              handle(text).catch((err: Error) => socket.close(CloseCode.InternalServerError, err.message.slice(0, 100)));
            for (const text of early) void take(text);
            socket.on('message', (data) => void take(String(data)));
          },
        },
        { identity },
      );
      socket.once('close', (code, reason) => {
        clearInterval(pings);
        clearTimeout(pongWait);
        void closed(code, String(reason));
      });
    },
  };
}
