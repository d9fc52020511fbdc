// The `retention` section of the config: what is given up by age and size, when it is looked at,
// and the free-space watermarks that make the agent give up more.
import { existsSync, statfsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Duration, strict } from '../config/keys.js';

const topics = Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'topic patterns (+, #) the rule applies to' });

const StoreRule = Type.Object(
  {
    topics,
    maxAge: Type.Optional(Duration('readings older than this (by receive time) are deleted from the local store')),
    maxBytes: Type.Optional(
      Type.Integer({
        minimum: 1,
        description:
          "the rule's topics are kept below this many bytes (SQLite: payload text; files: their files), oldest readings deleted first",
      }),
    ),
  },
  strict,
);

const RollupRule = Type.Object(
  {
    topics,
    buckets: Type.Array(Duration('a bucket width of rollups.buckets'), {
      minItems: 1,
      description: 'the bucket widths the rule applies to (widths rollups.buckets does not keep are skipped)',
    }),
    maxAge: Type.Optional(Duration('rollups whose bucket ended longer ago than this are deleted')),
    maxBytes: Type.Optional(
      Type.Integer({
        minimum: 1,
        description:
          "the rule's rollups are kept below this many bytes (their share of rollups.db by rows), the oldest buckets deleted first",
      }),
    ),
  },
  strict,
);

/** Free space: a percentage of the filesystem, or bytes (plain, or with a unit). */
const FreeSpace = (description: string, def: string) =>
  Type.String({
    pattern: '^([0-9]+(\\.[0-9]+)?%|[0-9]+(B|kB|MB|GB|KiB|MiB|GiB)?)$',
    default: def,
    description: `${description}: free space, "10%" of the filesystem or bytes ("500MB", "2GiB")`,
  });

const Disk = Type.Object(
  {
    intervalSec: Type.Integer({
      minimum: 1,
      maximum: 3600,
      default: 5,
      description:
        'how often free space of the data directory is read (statfs); it is also read after every few MB the agent writes (an eighth of the smallest room between two watermarks, 256 kB to 8 MB), so that no rate skips a watermark',
    }),
    warn: FreeSpace('below this a warning is logged and shown', '20%'),
    act: FreeSpace(
      'below this the agent deletes, in order: readings every sink has, the oldest dead letters, raw readings its rollups cover, the oldest unsent log chunks, until free space is back above it',
      '10%',
    ),
    critical: FreeSpace(
      'below this ingest takes no new readings (QoS 1 publishers get no PUBACK and are held) until free space is back above act (no flapping at the mark)',
      '5%',
    ),
    reserve: FreeSpace(
      'the agent writes nothing more below this (only deletes): room kept for the operating system and for what deletions write (LevelDB compacts into new files first); one below 32MiB is raised to 32MiB (said at start and by config check), 0B turns it off',
      '2%',
    ),
  },
  { ...strict, default: {} },
);

export const RetentionConfigSchema = Type.Object(
  {
    schedule: Type.String({ minLength: 1, default: '*/10 * * * *', description: 'cron expression (croner): when retention runs' }),
    store: Type.Array(StoreRule, {
      default: [],
      description: 'local store rules; the first rule whose pattern matches a topic decides; none: kept until disk pressure',
    }),
    storeMaxBytes: Type.Integer({
      minimum: 0,
      default: 0,
      description: 'the local store is kept below this size, oldest readings deleted first; 0 = no limit (disk pressure still applies)',
    }),
    rollups: Type.Array(RollupRule, {
      default: [
        { topics: ['#'], buckets: ['1m'], maxAge: '7d' },
        { topics: ['#'], buckets: ['5m'], maxAge: '30d' },
        { topics: ['#'], buckets: ['1h'], maxAge: '365d' },
      ],
      description: 'rollup rules; for each topic and bucket width the first matching rule decides; none: kept',
    }),
    deadLetters: Type.Object(
      {
        maxAge: Duration('dead letters older than this are deleted', '30d'),
        rules: Type.Array(
          Type.Object(
            {
              topics,
              maxAge: Type.Optional(Duration('dead letters on these topics older than this are deleted')),
              maxBytes: Type.Optional(
                Type.Integer({
                  minimum: 1,
                  description: 'dead letters on these topics are kept below this many bytes, the oldest deleted first',
                }),
              ),
            },
            strict,
          ),
          {
            default: [],
            description: 'limits per topic pattern, the first matching rule deciding (ingest.deadLetters caps them all by count and bytes)',
          },
        ),
      },
      { ...strict, default: {} },
    ),
    stepReadings: Type.Integer({
      minimum: 100,
      maximum: 100000,
      default: 5000,
      description: 'readings deleted per step: each step holds the store briefly, writes go on between steps',
    }),
    disk: Disk,
  },
  { ...strict, default: {} },
);

export type RetentionConfig = Static<typeof RetentionConfigSchema>;
export type DiskConfig = RetentionConfig['disk'];

const UNITS: Record<string, number> = { B: 1, kB: 1e3, MB: 1e6, GB: 1e9, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };

/** A watermark in bytes of free space, for a filesystem of `total` bytes. */
export function freeBytes(mark: string, total: number): number {
  if (mark.endsWith('%')) return Math.round((Number(mark.slice(0, -1)) / 100) * total);
  const m = /^([0-9]+)([A-Za-z]*)$/.exec(mark)!;
  return Number(m[1]) * UNITS[m[2] || 'B'];
}

/** The size of the filesystem `dir` is on (or will be, once made). */
export function filesystemSize(dir: string): number {
  let at = resolve(dir);
  while (!existsSync(at) && dirname(at) !== at) at = dirname(at);
  const fs = statfsSync(at);
  return fs.blocks * fs.bsize;
}

const MARKS = ['warn', 'act', 'critical', 'reserve'] as const;

/**
 * The one rule of the disk marks, checked when the config is loaded: warn >= act >= critical >=
 * reserve, in free space on the filesystem of `total` bytes (marks in % and in bytes compared there).
 */
export function markOrderProblems(disk: Pick<DiskConfig, (typeof MARKS)[number]>, total: number): string[] {
  const problems: string[] = [];
  for (let i = 1; i < MARKS.length; i++) {
    const [a, b] = [MARKS[i - 1], MARKS[i]];
    if (freeBytes(disk[a], total) < freeBytes(disk[b], total)) {
      const where = disk[a].endsWith('%') === disk[b].endsWith('%') ? '' : ` on this filesystem (${(total / 1024 ** 3).toFixed(1)} GiB)`;
      problems.push(
        `retention.disk.${b}: ${disk[b]} is more free space than retention.disk.${a} (${disk[a]})${where}; want warn >= act >= critical >= reserve`,
      );
    }
  }
  return problems;
}
