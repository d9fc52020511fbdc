// PostgreSQL / TimescaleDB sink. Idempotent on (agent_id, seq): a batch is first COPied straight into
// the table; if any row is already there (a resend after a timeout, crash or restart), the batch goes
// through a staging table and INSERT ... ON CONFLICT DO NOTHING instead, until a batch is clean again.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { inSlices } from '../../../lib/slices.js';
import { down, invalid, isTlsTrustError, SinkError, transient } from '../sink.js';
import type { Encoded, Sink, SinkContext, WriteResult } from '../sink.js';
import type { OutBatch } from '../record.js';
import { BASE_COLUMNS, columnTypeOf, copyRows, SQL_TYPES, type TypedColumn } from './copy.js';
import type { PostgresConfig } from './config.js';

interface CopyBatch extends Encoded {
  rows: string;
  count: number;
}

const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;

export class PostgresSink implements Sink<CopyBatch> {
  private readonly table: string;
  private readonly typed: TypedColumn[];
  private readonly columns: string;
  private pool: pg.Pool | undefined;
  /** Set after a COPY met rows already there; cleared by a staged batch that inserted every row. */
  private resending = false;

  constructor(
    private readonly config: PostgresConfig,
    private readonly ctx: SinkContext,
  ) {
    this.table = `${quoteIdent(config.schema)}.${quoteIdent(config.table)}`;
    this.typed = typedColumns(config, ctx);
    this.columns = [...BASE_COLUMNS, ...this.typed.map((c) => c.column)].map(quoteIdent).join(', ');
  }

  async start(): Promise<void> {
    if (this.pool) return;
    const { config } = this;
    const p = new pg.Pool({
      ...connection(config),
      max: 2,
      idleTimeoutMillis: 60_000,
      connectionTimeoutMillis: config.timeoutMs,
      query_timeout: config.timeoutMs,
    });
    p.on('error', () => {}); // an idle client lost its server; the next query reports it
    try {
      await this.prepareTable(p);
    } catch (err) {
      await p.end().catch(() => {});
      throw classify(err);
    }
    this.pool = p;
  }

  async encode(records: OutBatch): Promise<{ encoded: CopyBatch; refused: { index: number; reason: string }[] }> {
    let rows = '';
    await inSlices(records.length, (from, to) => (rows += copyRows(records.slice(from, to), this.typed)));
    return { encoded: { rows, count: records.length, bytes: Buffer.byteLength(rows) }, refused: [] };
  }

  async write(batch: CopyBatch, signal: AbortSignal): Promise<WriteResult> {
    if (!this.pool) throw transient('not connected');
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw classify(err);
    }
    // A timed-out request is cut at the socket: the open transaction dies with the connection.
    const cut = () => (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
    signal.addEventListener('abort', cut, { once: true });
    // A connection lost mid-query fails the query; pg also emits it here, where it must not go unheard.
    const lost = () => {};
    client.on('error', lost);
    let broken = false;
    try {
      if (!this.resending) {
        try {
          await inTransaction(client, () => this.copy(client, this.table, batch.rows));
          return {};
        } catch (err) {
          if ((err as { code?: string }).code !== '23505') throw err;
          this.resending = true;
        }
      }
      const inserted = await this.staged(client, batch);
      if (inserted === batch.count) this.resending = false;
      return {};
    } catch (err) {
      broken = true;
      throw signal.aborted ? transient(`no confirmation within the timeout`) : classify(err);
    } finally {
      signal.removeEventListener('abort', cut);
      client.off('error', lost);
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    await this.pool?.end().catch(() => {});
    this.pool = undefined;
  }

  private async prepareTable(p: pg.Pool): Promise<void> {
    const { config, table } = this;
    const timescale = config.hypertable && (await p.query("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")).rowCount === 1;
    const exists = (await p.query('SELECT to_regclass($1) AS t', [table])).rows[0].t !== null;
    if (config.schema !== 'public') await p.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(config.schema)}`);
    // A hypertable's unique keys must hold its time column; ts is fixed by the record, so still one row per reading.
    const key = timescale ? 'agent_id, seq, ts' : 'agent_id, seq';
    await p.query(`CREATE TABLE IF NOT EXISTS ${table} (
      agent_id text NOT NULL, seq bigint NOT NULL, ts timestamptz NOT NULL, received_at timestamptz NOT NULL,
      topic text NOT NULL, client_id text NOT NULL, schema_id text, clock_synced boolean NOT NULL, payload jsonb NOT NULL,
      PRIMARY KEY (${key}))`);
    // Tables made before readings' times were corrected after a clock sync.
    await p.query(`ALTER TABLE ${table} ADD COLUMN IF NOT EXISTS clock_correction_ms bigint`);
    for (const c of this.typed) await p.query(`ALTER TABLE ${table} ADD COLUMN IF NOT EXISTS ${quoteIdent(c.column)} ${SQL_TYPES[c.type]}`);
    await p.query(`CREATE INDEX IF NOT EXISTS ${quoteIdent(`${config.table}_topic_ts`)} ON ${table} (topic, ts)`);
    if (timescale && !exists) await p.query('SELECT create_hypertable($1, $2, if_not_exists => TRUE)', [table, 'ts']);
    this.ctx.logger.info(
      { table: `${config.schema}.${config.table}`, created: !exists, hypertable: timescale && !exists },
      'postgres table ready',
    );
  }

  private async copy(client: pg.PoolClient, into: string, rows: string): Promise<void> {
    await pipeline(Readable.from([rows]), client.query(copyFrom(`COPY ${into} (${this.columns}) FROM STDIN`)));
  }

  /** A batch resent (rows already there): through a staging table, inserting only the rows missing. */
  private staged(client: pg.PoolClient, batch: CopyBatch): Promise<number> {
    return inTransaction(client, async () => {
      await client.query(
        `CREATE TEMP TABLE IF NOT EXISTS edge_agent_staging (LIKE ${this.table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`,
      );
      await this.copy(client, 'edge_agent_staging', batch.rows);
      const inserted = await client.query(
        `INSERT INTO ${this.table} (${this.columns}) SELECT ${this.columns} FROM edge_agent_staging ON CONFLICT DO NOTHING`,
      );
      return inserted.rowCount ?? 0;
    });
  }
}

async function inTransaction<T>(client: pg.PoolClient, work: () => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    const result = await work();
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

/** The payload fields the config wants as typed columns, their types from the config or the reading schemas. */
function typedColumns(config: PostgresConfig, ctx: SinkContext): TypedColumn[] {
  return config.columns.map((c) => {
    const fromSchema = ctx.schemas
      .list()
      .map((s) => s.fields[c.field])
      .find((t) => t !== undefined);
    return {
      column: c.column ?? c.field.replace(/\./g, '_'),
      path: c.field.split('.'),
      type: c.type ?? (fromSchema ? columnTypeOf(fromSchema) : 'float'),
    };
  });
}

function isLoopback(host: string | undefined): boolean {
  if (!host || host.startsWith('/') || host === 'localhost') return true;
  return isIP(host) !== 0 && (host.startsWith('127.') || host === '::1');
}

/** URL and fields merged (fields win); TLS as sslmode says (else verify-full, except on loopback). */
function connection(config: PostgresConfig): pg.PoolConfig {
  const url = config.url ? new URL(config.url) : undefined;
  const part = (v: string | undefined) => (v ? decodeURIComponent(v) : undefined);
  const host = config.host ?? part(url?.hostname.replace(/^\[|\]$/g, '')) ?? url?.searchParams.get('host') ?? undefined;
  const mode = config.sslmode ?? url?.searchParams.get('sslmode') ?? (isLoopback(host) ? 'disable' : 'verify-full');
  const read = (file?: string) => (file ? readFileSync(file, 'utf8') : undefined);
  const tls = { ca: read(config.ca), cert: read(config.cert), key: read(config.key) };
  const ssl =
    mode === 'disable'
      ? false
      : mode === 'require'
        ? { ...tls, rejectUnauthorized: false }
        : mode === 'verify-ca'
          ? { ...tls, rejectUnauthorized: true, checkServerIdentity: () => undefined }
          : { ...tls, rejectUnauthorized: true };
  return {
    host,
    port: config.port ?? (url?.port ? Number(url.port) : undefined),
    database: config.database ?? part(url?.pathname.slice(1)),
    user: config.user ?? part(url?.username),
    password: config.password ?? part(url?.password), // else pg reads $PGPASSWORD
    ssl,
    application_name: 'edge-agent',
  };
}

/** SQLSTATE classes decide: credentials and permissions need a person; bad data is split out; the rest is retried. */
export function classify(err: unknown): SinkError {
  if (err instanceof SinkError) return err;
  const e = err as { code?: string; message?: string };
  const message = `postgres: ${e.message ?? String(err)}`;
  const code = e.code ?? '';
  if (['28P01', '28000', '3D000', '42501', '3F000', '42P01'].includes(code)) return down(message);
  if (isTlsTrustError(err) || /server does not support SSL/.test(e.message ?? '')) return down(message);
  if (code.startsWith('22') || code === '23502' || code === '23514') return invalid(message);
  return transient(message);
}
