// The `retention` section of the config: what is given up by age, and when it is looked at.
import { Type, type Static } from '@sinclair/typebox';
import { strict } from '../config/keys.js';

/** 90s, 15m, 12h, 30d. */
const Duration = (description: string) => Type.String({ pattern: '^[1-9][0-9]*(s|m|h|d)$', description });

const StoreRule = Type.Object(
  {
    topics: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'topic patterns (+, #) the rule applies to' }),
    maxAge: Duration('readings older than this (by receive time) are deleted from the local store'),
  },
  strict,
);

export const RetentionConfigSchema = Type.Object(
  {
    schedule: Type.String({ minLength: 1, default: '*/10 * * * *', description: 'cron expression (croner): when retention runs' }),
    store: Type.Array(StoreRule, { default: [], description: 'local store rules; the first rule whose pattern matches a topic decides; none: kept until disk pressure' }),
    deadLetters: Type.Object({ maxAge: Duration('dead letters older than this are deleted') }, { ...strict, default: { maxAge: '30d' } }),
    stepReadings: Type.Integer({ minimum: 100, maximum: 100000, default: 5000, description: 'readings deleted per step: each step holds the store briefly, writes go on between steps' }),
  },
  { ...strict, default: {} },
);

export type RetentionConfig = Static<typeof RetentionConfigSchema>;

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

export function durationMs(d: string): number {
  return Number(d.slice(0, -1)) * UNIT_MS[d.at(-1) as keyof typeof UNIT_MS];
}
