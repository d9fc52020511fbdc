// The `rollups` section of the config: which statistics are kept of the readings, per series and bucket.
import { Type, type Static } from '@sinclair/typebox';
import { Duration, strict } from '../../config/keys.js';

const Series = Type.Object(
  {
    topics: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'topic patterns (+, #) the rule applies to' }),
    tags: Type.Array(Type.String({ minLength: 1 }), {
      maxItems: 8,
      description: 'payload fields whose values split a topic into series (e.g. room); they are not rolled up themselves',
    }),
  },
  strict,
);

export const RollupConfigSchema = Type.Object(
  {
    enabled: Type.Boolean({
      default: true,
      description: 'keep count, min, max, sum, mean, stddev and last of every numeric field, per series and bucket',
    }),
    path: Type.Optional(Type.String({ minLength: 1, description: 'database file; default <dataDir>/rollups.db' })),
    buckets: Type.Array(Duration('bucket width'), {
      minItems: 1,
      maxItems: 8,
      default: ['1m', '5m', '1h', '1d'],
      description: 'bucket widths; buckets start at multiples of their width since the epoch (UTC)',
    }),
    series: Type.Array(Series, {
      default: [],
      description: 'series rules; the first rule whose pattern matches a topic decides; none: one series per topic',
    }),
    maxFields: Type.Integer({
      minimum: 1,
      maximum: 256,
      default: 32,
      description: 'most numeric fields of one reading rolled up (nested objects as a.b); more are ignored and counted',
    }),
    closeAfterMs: Type.Integer({
      minimum: 0,
      maximum: 3600000,
      default: 10000,
      description:
        'a bucket is closed, and sent to the sinks that take rollups, this long after it ended (readings still on their way reach it first)',
    }),
    batchSize: Type.Integer({ minimum: 1, maximum: 100000, default: 10000, description: 'most readings per rollup transaction' }),
    gatherMs: Type.Integer({
      minimum: 0,
      maximum: 60000,
      default: 1000,
      description: 'until batchSize readings wait, update once the first waiting one was committed this long ago',
    }),
    maxGatherMs: Type.Integer({
      minimum: 0,
      maximum: 3600000,
      default: 300000,
      description:
        'when readings are few, the wait grows up to this, so that a transaction holds about batchSize readings (at 10 readings/s: one write every 5 minutes rather than every second; the log holds the readings meanwhile, and a query has what waits written first)',
    }),
  },
  { ...strict, default: {} },
);

export type RollupConfig = Static<typeof RollupConfigSchema>;
