// Rows in PostgreSQL's COPY text format: tab-separated, \N for NULL, backslash escapes.
import type { FieldType } from '../sink.js';
import type { OutRecord } from '../record.js';

export type ColumnType = 'float' | 'integer' | 'boolean' | 'text' | 'timestamp' | 'jsonb';

export const SQL_TYPES: Record<ColumnType, string> = {
  float: 'double precision',
  integer: 'bigint',
  boolean: 'boolean',
  text: 'text',
  timestamp: 'timestamptz',
  jsonb: 'jsonb',
};

/** A reading schema's field type as a column type. */
export function columnTypeOf(field: FieldType): ColumnType {
  switch (field) {
    case 'string':
      return 'text';
    case 'array':
    case 'object':
      return 'jsonb';
    default:
      return field;
  }
}

export interface TypedColumn {
  column: string;
  path: string[];
  type: ColumnType;
}

const SPECIAL = /[\\\t\n\r]/;
const SPECIAL_ALL = /[\\\t\n\r]/g;
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

export function escapeCopy(s: string): string {
  return SPECIAL.test(s) ? s.replace(SPECIAL_ALL, (c) => ESCAPES[c]) : s;
}

const NULL = '\\N';

/** A device clock can say anything; a time PostgreSQL cannot hold falls back to the receive time. */
function iso(ms: number, fallback: string): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) || d.getUTCFullYear() > 9999 || d.getUTCFullYear() < 1 ? fallback : d.toISOString();
}

/** Epoch seconds or milliseconds (as ingest reads device times), or an ISO 8601 string. */
function toTimestamp(v: unknown): string | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return new Date(Math.abs(v) < 1e11 ? v * 1000 : v).toISOString();
  if (typeof v === 'string' && !Number.isNaN(Date.parse(v))) return new Date(Date.parse(v)).toISOString();
  return undefined;
}

/** A payload value in a typed column; a value that does not fit is NULL, never a failed batch. */
function typedValue(v: unknown, type: ColumnType): string {
  if (v === undefined || v === null) return NULL;
  switch (type) {
    case 'float':
      return typeof v === 'number' ? String(v) : NULL;
    case 'integer':
      return Number.isSafeInteger(v) ? String(v) : NULL;
    case 'boolean':
      return typeof v === 'boolean' ? (v ? 't' : 'f') : NULL;
    case 'text':
      return escapeCopy(typeof v === 'string' ? v : JSON.stringify(v));
    case 'timestamp':
      return toTimestamp(v) ?? NULL;
    case 'jsonb':
      return escapeCopy(JSON.stringify(v));
  }
}

function pick(payload: unknown, path: string[]): unknown {
  let v = payload;
  for (const key of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

export const BASE_COLUMNS = [
  'agent_id',
  'seq',
  'ts',
  'received_at',
  'topic',
  'client_id',
  'schema_id',
  'clock_synced',
  'clock_correction_ms',
  'payload',
];

/** One COPY line per record, columns as BASE_COLUMNS then the typed ones. */
export function copyRows(records: Iterable<OutRecord>, typed: readonly TypedColumn[]): string {
  let out = '';
  for (const r of records) {
    const received = new Date(r.receivedAt).toISOString();
    out += `${escapeCopy(r.agentId)}\t${r.seq}\t${r.deviceTime === undefined ? received : iso(r.deviceTime, received)}\t${received}\t`;
    out += `${escapeCopy(r.topic)}\t${escapeCopy(r.clientId)}\t${r.schema === undefined ? NULL : escapeCopy(r.schema)}\t${r.clockSynced ? 't' : 'f'}\t${r.clockCorrectionMs ?? NULL}\t${escapeCopy(r.payloadJson)}`;
    if (typed.length) {
      const payload = r.encoding === 'base64' ? undefined : r.payload();
      for (const c of typed) out += `\t${typedValue(pick(payload, c.path), c.type)}`;
    }
    out += '\n';
  }
  return out;
}
