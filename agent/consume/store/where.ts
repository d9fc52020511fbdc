// Conditions on payload fields (`temperature>20`, `status=ok`), shared by both stores.
import type { LogRecord } from '../../log/format.js';
import type { FieldFilter, Position } from './types.js';

/** A time as queries take it: ms since the epoch, or ISO 8601; NaN if it is neither. */
export const parseTime = (text: string) => (/^\d{1,16}$/.test(text) ? Number(text) : Date.parse(text));

const OPS = ['<=', '>=', '!=', '=', '<', '>'] as const;

/** `name<op>value`; the value is a number, true, false, null, or else text. Throws naming what is wrong. */
export function parseFilter(text: string): FieldFilter {
  const m = /^([A-Za-z0-9_$][A-Za-z0-9_$.-]{0,127})\s*(<=|>=|!=|=|<|>)\s*(.*)$/.exec(text);
  if (!m) throw new Error(`${JSON.stringify(text.slice(0, 80))} is not <field><op><value> with op one of ${OPS.join(' ')}`);
  const raw = m[3];
  const num = Number(raw);
  const value =
    raw === 'true' ? true : raw === 'false' ? false : raw === 'null' ? null : raw.trim() !== '' && Number.isFinite(num) ? num : raw;
  return { path: m[1], op: m[2] as FieldFilter['op'], value };
}

export function fieldOf(payload: unknown, path: string): unknown {
  let at = payload;
  for (const part of path.split('.')) {
    if (at === null || typeof at !== 'object') return undefined;
    at = (at as Record<string, unknown>)[part];
  }
  return at;
}

function holds(actual: unknown, f: FieldFilter): boolean {
  if (actual === undefined) return f.op === '!=';
  if (f.op === '=') return actual === f.value;
  if (f.op === '!=') return actual !== f.value;
  // Order only within one type: a number against a number, text against text.
  if (typeof actual !== typeof f.value || (typeof actual !== 'number' && typeof actual !== 'string')) return false;
  const [a, b] = [actual as number | string, f.value as number | string];
  return f.op === '<' ? a < b : f.op === '<=' ? a <= b : f.op === '>' ? a > b : a >= b;
}

export function matchesWhere(record: LogRecord, where: FieldFilter[] | undefined): boolean {
  if (!where?.length) return true;
  return where.every((f) => holds(fieldOf(record.payload, f.path), f));
}

/** Readings that meet the conditions, lazily. */
export function* meeting(records: Iterable<LogRecord>, where: FieldFilter[] | undefined): Generator<LogRecord> {
  for (const r of records) if (matchesWhere(r, where)) yield r;
}

/** By receive time, then seq; the other way round for desc. */
export const timeOrder = (desc: boolean) => (a: LogRecord, b: LogRecord) =>
  (desc ? -1 : 1) * (a.receivedAt - b.receivedAt || a.seq - b.seq);

/** Is the reading past the position, in this order? */
export const pastPosition = (r: LogRecord, p: Position, desc: boolean) =>
  desc ? r.receivedAt < p.at || (r.receivedAt === p.at && r.seq < p.seq) : r.receivedAt > p.at || (r.receivedAt === p.at && r.seq > p.seq);
