// Export of stored readings as CSV, JSON or JSON Lines, page by page (keyset paging on time and seq), so
// memory stays flat however many rows there are. Used by GET /api/export and `edge-agent export`.
import { BASE_COLUMNS, learnColumns, renderText, toCsv } from '../../consume/store/text.js';
import {
  TEXT_FORMATS,
  type Asker,
  type LocalStore,
  type Position,
  type StoreQuery,
  type TextForm,
  type TextFormat,
} from '../../consume/store/types.js';

export const EXPORT_FORMATS = TEXT_FORMATS;
export type ExportFormat = TextFormat;

export interface ExportOptions {
  /** What to export (topic filter, time range, field conditions, order). */
  query: Omit<StoreQuery, 'afterSeq' | 'after' | 'limit'>;
  format: ExportFormat;
  /** Payload fields (dotted paths) to keep; all when absent. */
  fields?: string[];
  /** Readings read per page (1,000): the store's thread holds one page's readings at a time, this thread its text. */
  pageRows?: number;
  /** Called after each page with the rows so far. */
  progress?: (rows: number) => void;
  /** Whom the export is for: its pages take that asker's turns in the store. */
  asker?: Asker;
}

/** The store as an export reads it: readings, or (where the store can) their text. */
export type Reader = Pick<LocalStore, 'query'> & Partial<Pick<LocalStore, 'text'>>;

export const contentTypes: Record<ExportFormat, string> = {
  csv: 'text/csv; charset=utf-8',
  json: 'application/json; charset=utf-8',
  jsonl: 'application/x-ndjson; charset=utf-8',
};

/** The export as text pieces, a few per page; pull them as the output drains. */
export async function* exportText(reader: Reader, opts: ExportOptions): AsyncGenerator<string> {
  const pageRows = opts.pageRows ?? 1000;
  const form: TextForm = { format: opts.format, ...(opts.fields ? { fields: opts.fields } : {}) };
  let after: Position | undefined;
  let rows = 0;
  if (opts.format === 'json') yield '[';
  for (;;) {
    const query = { ...opts.query, limit: pageRows, after };
    const page = await pageText(reader, query, form, rows, opts.asker);
    if (!page) break;
    // Only the page's text waits for a slow reader.
    for (const piece of page.pieces) yield piece;
    rows += page.rows;
    after = page.last;
    opts.progress?.(rows);
    if (page.rows < pageRows) break;
  }
  if (opts.format === 'json') yield rows ? '\n]\n' : ']\n';
  else if (opts.format === 'csv' && rows === 0) yield toCsv([[...BASE_COLUMNS, ...(opts.fields ?? [])]]);
}

/**
 * One page of readings as text, null when none is left. The store renders it where it can; the
 * first page of a CSV export is read as readings here, to learn its columns (`form.columns` then).
 */
async function pageText(
  reader: Reader,
  query: StoreQuery,
  form: TextForm,
  before: number,
  asker: Asker | undefined,
): Promise<{ pieces: string[]; rows: number; last: Position } | null> {
  if (reader.text && (form.format !== 'csv' || form.columns)) {
    const page = await reader.text(query, form, before, asker);
    return page.rows && page.last ? { pieces: page.pieces, rows: page.rows, last: page.last } : null;
  }
  const records = await reader.query(query, asker);
  if (!records.length) return null;
  if (form.format === 'csv') form.columns ??= learnColumns(records, form.fields);
  const last = records.at(-1)!;
  return { pieces: renderText(records, form, before), rows: records.length, last: { at: last.receivedAt, seq: last.seq } };
}
