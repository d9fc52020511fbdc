// InfluxDB line protocol: `measurement,tag=v field=1i,other="x" <ms>`, escaped per the spec:
// measurements escape commas and spaces; tag keys, tag values and field keys escape commas, equals
// signs and spaces; string field values escape double quotes and backslashes. Newlines are not
// allowed in any of them, so they become spaces (names) or `\n` text (string values).
import type { OutRecord } from '../../record.js';
import type { FieldType, SchemaInfo } from '../../sink.js';

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

/** A JSON value as a field value of the schema's type (floats where the schema does not say). */
function fieldValue(v: unknown, type: FieldType | undefined): string | undefined {
  switch (typeof v) {
    case 'number':
      if (type === 'integer' && Number.isSafeInteger(v)) return `${v}i`;
      return String(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'string':
      return escapeStringValue(v);
    default:
      return undefined;
  }
}

/** Nested objects and arrays become `a_b` and `a_0` fields, as Telegraf's JSON parser names them. */
function addFields(out: string[], key: string, v: unknown, info: SchemaInfo | undefined, skip: ReadonlySet<string>): void {
  if (v === null || v === undefined || skip.has(key)) return;
  if (typeof v === 'object') {
    const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x] as const) : Object.entries(v);
    for (const [k, x] of entries) addFields(out, key ? `${key}_${k}` : k, x, info, skip);
    return;
  }
  const value = fieldValue(v, info?.fields[key]);
  if (value !== undefined) out.push(`${escapeKey(key || 'value')}=${value}`);
}

function tagValue(v: unknown): string | undefined {
  if (typeof v === 'string') return v === '' ? undefined : v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

/**
 * One line for one reading, or why it has none. The schema names the measurement, the tag fields,
 * the integer fields and the timestamp field; the time is the device's, else the receive time, in ms.
 */
export function toLine(r: OutRecord, info: SchemaInfo | undefined, opts: LineOptions): { line: string } | { error: string } {
  const payload = r.encoding === 'base64' ? { payload: JSON.parse(r.payloadJson) as string } : r.payload();
  const tags: [string, string][] = [];
  if (opts.agentTag) tags.push([opts.agentTag, r.agentId]);
  if (opts.topicTag) tags.push([opts.topicTag, r.topic]);
  const skip = new Set<string>(info?.timestampField ? [info.timestampField] : []);
  if (info && typeof payload === 'object' && payload !== null) {
    for (const name of info.tags) {
      const v = tagValue((payload as Record<string, unknown>)[name]);
      if (v !== undefined) tags.push([name, v]);
      skip.add(name);
    }
  }
  const fields: string[] = [];
  addFields(fields, '', payload, info, skip);
  if (fields.length === 0) return { error: 'no field to write: InfluxDB points need at least one number, boolean or string' };
  tags.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  let line = escapeMeasurement(info?.measurement ?? opts.measurement);
  for (const [k, v] of tags) line += `,${escapeKey(k)}=${escapeKey(v)}`;
  return { line: `${line} ${fields.join(',')} ${r.deviceTime ?? r.receivedAt}` };
}
