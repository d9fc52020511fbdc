// The keys every sink takes (what the forwarder does with it); each sink adds its own in its folder.
import { Type, type TLiteral, type TObject, type TProperties } from '@sinclair/typebox';
import { choice, Duration } from '../../config/keys.js';

const strict = { additionalProperties: false } as const;

const Batch = Type.Object(
  {
    maxRecords: Type.Integer({ minimum: 1, maximum: 100000, default: 5000, description: 'most records per request' }),
    maxBytes: Type.Integer({ minimum: 1024, default: 4 * 1024 * 1024, description: 'most record bytes (before encoding) per request' }),
    maxAgeMs: Type.Integer({
      minimum: 0,
      maximum: 3600000,
      default: 1000,
      description: 'a partly filled batch is sent once it has waited this long',
    }),
  },
  { ...strict, default: {} },
);

const Retry = Type.Object(
  {
    initialMs: Type.Integer({ minimum: 10, default: 1000, description: 'first retry delay; doubles per failure, with jitter' }),
    maxMs: Type.Integer({ minimum: 10, default: 60000, description: 'longest retry delay while the sink is retrying' }),
    downMs: Type.Integer({
      minimum: 10,
      default: 300000,
      description: 'retry delay while the sink is down (bad credentials, missing database): no hot loop',
    }),
  },
  { ...strict, default: {} },
);

const Live = Type.Object(
  {
    enabled: Type.Optional(
      Type.Boolean({
        description:
          'send new readings beside a draining backlog; default true, false for mqtt (upstream subscribers then see readings out of order)',
      }),
    ),
    afterMs: Type.Integer({
      minimum: 0,
      default: 10000,
      description: 'open the live lane when the oldest unsent reading is older than this',
    }),
  },
  { ...strict, default: {} },
);

const common = {
  name: Type.String({ pattern: '^[A-Za-z0-9._-]+$', description: 'sink name: in status, metrics and the log consumer' }),
  topics: Type.Array(Type.String({ minLength: 1 }), { default: ['#'], description: 'topic filters (+, #) of readings this sink gets' }),
  excludeTopics: Type.Array(Type.String({ minLength: 1 }), {
    default: [],
    description: 'topic filters of readings this sink does not get',
  }),
  batch: Batch,
  retry: Retry,
  live: Live,
  rollups: Type.Optional(
    Type.Array(Duration('a bucket width of rollups.buckets'), {
      minItems: 1,
      description:
        'send rollups of these bucket widths (e.g. ["5m"]) instead of raw readings, for metered links: per series and closed bucket one record with count, min, max, sum, mean, stddev and last of each numeric field (agent id <id>/rollups, schema rollup/<width>)',
    }),
  ),
  startAt: choice(
    ['oldest', 'newest'],
    'oldest',
    'where a sink new to this agent starts: the oldest reading the log still holds (those it no longer holds are counted as dropped for the sink), or the next reading to come',
  ),
  timeoutMs: Type.Integer({ minimum: 100, default: 30000, description: 'a request not confirmed within this is retried' }),
  maxBytesPerSec: Type.Integer({ minimum: 0, default: 0, description: 'bandwidth cap on the wire (after compression); 0 = none' }),
};

export type SinkSchema<T extends string, P extends TProperties> = TObject<{ type: TLiteral<T> } & typeof common & P>;

/** One sink type's config: the common keys, `type: <type>`, and its own keys. */
export function sinkSchema<T extends string, P extends TProperties>(
  type: T,
  props: P,
  description: string,
  rules: object = {},
): SinkSchema<T, P> {
  const { name, ...rest } = common;
  return Type.Object({ name, type: Type.Literal(type), ...rest, ...props }, { ...strict, description, ...rules }) as unknown as SinkSchema<
    T,
    P
  >;
}
