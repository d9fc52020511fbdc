// Stored readings as export text (CSV, JSON, JSON Lines), in pieces. The store's database thread
// renders an export's pages itself (sqlite.ts `text`), so that the main thread's heap holds only
// text: a page's readings as objects, several times its text, never cross to it.
import type { LogRecord } from '../../log/format.js';
import { stringify } from 'csv-stringify/sync';
import type { TextForm } from './types.js';
import { fieldOf } from './where.js';

export const BASE_COLUMNS = ['seq', 'receivedAt', 'topic', 'clientId', 'schema', 'deviceTime', 'clockSynced', 'clockCorrectionMs'];
const EXTRA = '_extra';

/**
 * A piece ends after this many readings or characters: it stays under V8's large-object size (128
 * kB), so it dies young in a scavenge while it waits for a slow reader; a page's text as one string
 * went to the old generation's large objects and piled up there between full collections.
 */
const PIECE_ROWS = 200;
const PIECE_CHARS = 64 * 1024;

/** Booleans as true/false (csv-stringify writes false as an empty cell). */
export const toCsv = (rows: unknown[][]) => stringify(rows, { cast: { boolean: (b) => String(b) } });

const cell = (v: unknown) => (v === undefined || v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : v);
const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** The CSV columns of a first page: the fields asked for, or every payload field the page has. */
export function learnColumns(page: LogRecord[], fields: string[] | undefined): string[] {
  return fields ?? [...new Set(page.flatMap((r) => (isObject(r.payload) ? Object.keys(r.payload) : ['payload'])))];
}

/** The CSV head line. */
export const csvHead = (columns: string[], fields: string[] | undefined) =>
  toCsv([[...BASE_COLUMNS, ...columns, ...(fields ? [] : [EXTRA])]]);

function csvRow(r: LogRecord, columns: string[], fields: string[] | undefined): unknown[] {
  const base = [
    r.seq,
    new Date(r.receivedAt).toISOString(),
    r.topic,
    r.clientId,
    r.schema ?? '',
    r.deviceTime === undefined ? '' : new Date(r.deviceTime).toISOString(),
    r.clockSynced,
    r.clockCorrectionMs ?? '',
  ];
  if (fields) return [...base, ...columns.map((f) => cell(fieldOf(r.payload, f)))];
  const payload = isObject(r.payload) ? r.payload : { payload: r.payload };
  const extra = Object.fromEntries(Object.entries(payload).filter(([k]) => !columns.includes(k)));
  return [...base, ...columns.map((c) => cell(payload[c])), Object.keys(extra).length ? JSON.stringify(extra) : ''];
}

function project(payload: unknown, fields: string[] | undefined): unknown {
  if (!fields) return payload;
  return Object.fromEntries(fields.map((f) => [f, fieldOf(payload, f) ?? null]));
}

/** One reading's text: a CSV line, or a JSON text (the separators are the piece's). */
function readingText(r: LogRecord, form: TextForm): string {
  if (form.format === 'csv') return toCsv([csvRow(r, form.columns!, form.fields)]);
  return JSON.stringify({ ...r, payload: project(r.payload, form.fields) });
}

/**
 * Readings as text pieces, `before`: readings of the export already written (the JSON array's
 * commas; the CSV head goes before the first). CSV needs `form.columns`.
 */
export function renderText(records: LogRecord[], form: TextForm, before: number): string[] {
  const pieces: string[] = [];
  let lines: string[] = [];
  let chars = 0;
  let written = before;
  const cut = () => {
    if (!lines.length) return;
    if (form.format === 'csv') pieces.push((written ? '' : csvHead(form.columns!, form.fields)) + lines.join(''));
    else if (form.format === 'jsonl') pieces.push(`${lines.join('\n')}\n`);
    else pieces.push(`${written ? ',' : ''}\n${lines.join(',\n')}`);
    written += lines.length;
    lines = [];
    chars = 0;
  };
  for (const r of records) {
    const line = readingText(r, form);
    lines.push(line);
    chars += line.length;
    if (lines.length >= PIECE_ROWS || chars >= PIECE_CHARS) cut();
  }
  cut();
  return pieces;
}
