// InfluxDB line protocol: `measurement,tag=v field=1i,other="x" <ns>`, escaped per the spec:
// measurements escape commas and spaces; tag keys, tag values and field keys escape commas, equals
// signs and spaces; string field values escape double quotes and backslashes. Newlines are not
// allowed in any of them, so they become spaces (names) or `\n` text (string values).
import type { LogRecord } from '../record.js';
import type { FieldType, SchemaInfo } from '../sink.js';

const NEWLINES = /[\r\n]/g;

/** Names and tag values repeat (a Pi has a few topics and sensors): escape each once. */
function memo(escape: (s: string) => string): (s: string) => string {
  const seen = new Map<string, string>();
  return (s) => {
    let out = seen.get(s);
    if (out === undefined) {
      if (seen.size > 10_000) seen.clear();
      seen.set(s, (out = escape(s)));
    }
    return out;
  };
}

export const escapeMeasurement = memo((s) => s.replace(NEWLINES, ' ').replace(/[, ]/g, '\\$&'));

export const escapeKey = memo((s) => s.replace(NEWLINES, ' ').replace(/[,= ]/g, '\\$&'));

const STRING_SPECIAL = /["\\\r\n]/;

export function escapeStringValue(s: string): string {
  if (!STRING_SPECIAL.test(s)) return `"${s}"`;
  return `"${s.replace(/["\\]/g, '\\$&').replace(/\r/g, '\\r').replace(/\n/g, '\\n')}"`;
}

export interface LineOptions {
  /** Measurement of readings no schema describes. */
  measurement: string;
  /** Tag holding the agent id, and tag holding the topic; '' = none. */
  agentTag: string;
  topicTag: string;
}

/** What stays the same for every reading of one schema (or of none) in one sink: worked out once. */
interface Plan {
  measurement: string;
  /** Tags in key order (as InfluxDB prefers), keys escaped; where each value comes from. */
  tags: { key: string; from: 'agent' | 'topic' | 'payload'; name: string }[];
  /** Payload fields that are not fields: the tags and the timestamp. */
  skip: ReadonlySet<string>;
  types: Readonly<Record<string, FieldType>>;
  /** Per field name met so far: one lookup for what three would tell. */
  seen: Map<string, FieldPlan>;
}

interface FieldPlan {
  skip: boolean;
  /** `key=` escaped, and whether whole numbers are written as integers (`12i`). */
  prefix: string;
  integer: boolean;
}

const plans = new WeakMap<LineOptions, Map<SchemaInfo | undefined, Plan>>();

function planFor(info: SchemaInfo | undefined, opts: LineOptions): Plan {
  let bySchema = plans.get(opts);
  if (!bySchema) plans.set(opts, (bySchema = new Map()));
  let plan = bySchema.get(info);
  if (!plan) {
    const tags: Plan['tags'] = [];
    if (opts.agentTag) tags.push({ key: opts.agentTag, from: 'agent', name: opts.agentTag });
    if (opts.topicTag) tags.push({ key: opts.topicTag, from: 'topic', name: opts.topicTag });
    for (const name of info?.tags ?? []) tags.push({ key: name, from: 'payload', name });
    tags.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    for (const t of tags) t.key = escapeKey(t.key);
    const skip = new Set(info?.tags ?? []);
    if (info?.timestampField) skip.add(info.timestampField);
    plan = {
      measurement: escapeMeasurement(info?.measurement ?? opts.measurement),
      tags,
      skip,
      types: info?.fields ?? {},
      seen: new Map(),
    };
    if (bySchema.size > 1000) bySchema.clear();
    bySchema.set(info, plan);
  }
  return plan;
}

function tagValue(v: unknown): string | undefined {
  if (typeof v === 'string') return v === '' ? undefined : v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

function fieldPlan(plan: Plan, key: string): FieldPlan {
  let f = plan.seen.get(key);
  if (f === undefined) {
    if (plan.seen.size > 10_000) plan.seen.clear();
    f = { skip: plan.skip.has(key), prefix: `${escapeKey(key || 'value')}=`, integer: plan.types[key] === 'integer' };
    plan.seen.set(key, f);
  }
  return f;
}

/** Fields as `k=v,...`; nested objects and arrays become `a_b` and `a_0`, as Telegraf's JSON parser names them. */
function fields(out: string, key: string, v: unknown, plan: Plan): string {
  if (v === null || v === undefined) return out;
  if (typeof v === 'object') {
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) out = fields(out, key ? `${key}_${i}` : String(i), v[i], plan);
    } else {
      for (const k in v) out = fields(out, key ? `${key}_${k}` : k, (v as Record<string, unknown>)[k], plan);
    }
    return out;
  }
  const f = fieldPlan(plan, key);
  if (f.skip) return out;
  switch (typeof v) {
    case 'number':
      return `${out}${out ? ',' : ''}${f.prefix}${f.integer && Number.isSafeInteger(v) ? `${v}i` : v}`;
    case 'boolean':
      return `${out}${out ? ',' : ''}${f.prefix}${v ? 'true' : 'false'}`;
    case 'string':
      return `${out}${out ? ',' : ''}${f.prefix}${escapeStringValue(v)}`;
    default:
      return out;
  }
}

const NO_FIELDS = { error: 'no field to write: InfluxDB points need at least one number, boolean or string' };

/**
 * A point's time in nanoseconds: the reading's millisecond, and its sequence number (mod 10^6) in
 * the digits below, so readings of one series in one millisecond stay apart and a resend of one
 * lands on the same point (idempotent).
 */
export function pointTime(ms: number, seq: number): string {
  const sub = String(seq % 1_000_000).padStart(6, '0');
  return ms >= 1 ? `${Math.trunc(ms)}${sub}` : String(BigInt(Math.trunc(ms)) * 1_000_000n + BigInt(sub));
}

/**
 * One line for one reading, or why it has none. The schema names the measurement, the tag fields,
 * the integer fields and the timestamp field; the time is the device's, else the receive time (ms,
 * with the sequence in the nanosecond digits: pointTime).
 */
export function toLine(r: LogRecord, info: SchemaInfo | undefined, opts: LineOptions): { line: string } | { error: string } {
  const payload = r.encoding === 'base64' ? { payload: r.payload } : r.payload;
  const plan = planFor(info, opts);
  let fieldSet = fields('', '', payload, plan);
  if (fieldSet === '') return NO_FIELDS;
  if (r.clockCorrectionMs !== undefined) fieldSet += `,clock_correction_ms=${r.clockCorrectionMs}i`;
  let line = plan.measurement;
  for (const t of plan.tags) {
    const v =
      t.from === 'agent'
        ? r.agentId
        : t.from === 'topic'
          ? r.topic
          : typeof payload === 'object' && payload !== null
            ? tagValue((payload as Record<string, unknown>)[t.name])
            : undefined;
    if (v !== undefined && v !== '') line += `,${t.key}=${escapeKey(v)}`;
  }
  return { line: `${line} ${fieldSet} ${pointTime(r.deviceTime ?? r.receivedAt, r.seq)}` };
}
