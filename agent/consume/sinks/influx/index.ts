// InfluxDB sink: line protocol over HTTP, v1 (/write, user and password) or v2 (/api/v2/write,
// token; also InfluxDB 3 and VictoriaMetrics), gzip bodies, ns precision (the reading's ms and its
// sequence below it). Idempotent by nature: a point is its measurement, tags and time, so a resent
// line overwrites itself.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { promisify } from 'node:util';
import { gunzipSync, gzip } from 'node:zlib';
import { inSlices } from '../../../lib/slices.js';
import { down, invalid, isTlsTrustError, transient } from '../sink.js';
import type { Encoded, Sink, SinkContext, WriteResult } from '../sink.js';
import type { OutBatch } from '../record.js';
import type { InfluxConfig } from './config.js';
import { LineBuffer } from '../line-buffer.js';
import { toLine } from './line-protocol.js';

const gzipAsync = promisify(gzip);
const SPARE_BUFFERS = 4;

interface LineBatch extends Encoded {
  /** The lines, gzip-compressed unless gzipLevel is 0. */
  body: Buffer;
  /** Index in the batch of the record each line came from. */
  records: number[];
}

interface Response {
  status: number;
  body: string;
  retryAfter?: string;
}

export class InfluxSink implements Sink<LineBatch> {
  readonly concurrency: number;
  private readonly target: URL;
  private readonly headers: Record<string, string> = { 'Content-Type': 'text/plain; charset=utf-8' };
  /** Line buffers to encode into, reused: fresh ones for every batch would make the GC run more often (it counts off-heap bytes too). */
  private readonly spare: LineBuffer[] = [];
  private readonly client: typeof http | typeof https;
  private readonly agent: http.Agent;

  constructor(
    private readonly config: InfluxConfig,
    private readonly ctx: SinkContext,
  ) {
    this.concurrency = config.requests;
    this.target = writeUrl(config);
    const { headers } = this;
    if (config.gzipLevel > 0) headers['Content-Encoding'] = 'gzip';
    if (config.version === 2 && config.token) headers.Authorization = `Token ${config.token}`;
    if (config.version === 1 && config.username)
      headers.Authorization = `Basic ${Buffer.from(`${config.username}:${config.password ?? ''}`).toString('base64')}`;
    this.client = this.target.protocol === 'https:' ? https : http;
    // One socket per backlog request in flight, and one for the live lane.
    this.agent = new this.client.Agent({
      keepAlive: true,
      maxSockets: config.requests + 1,
      ...(config.ca && { ca: readFileSync(config.ca) }),
    });
  }

  async start(): Promise<void> {}

  async encode(records: OutBatch): Promise<{ encoded: LineBatch; refused: { index: number; reason: string }[] }> {
    const { config, spare } = this;
    const text = spare.pop() ?? new LineBuffer(records.bytes + 1024);
    const indexes: number[] = [];
    const refused: { index: number; reason: string }[] = [];
    await inSlices(records.length, (from, to) => {
      for (let index = from; index < to; index++) {
        const r = records.parsed(index);
        const out = toLine(r, r.schema === undefined ? undefined : this.ctx.schemas.byId(r.schema), config);
        if ('error' in out) {
          refused.push({ index, reason: `influx: ${out.error}` });
          continue;
        }
        text.push(out.line);
        indexes.push(index);
      }
    });
    if (config.gzipLevel === 0) return { encoded: { body: text.bytes(), records: indexes, bytes: text.bytes().length }, refused };
    const body = await gzipAsync(text.bytes(), { level: config.gzipLevel });
    text.clear();
    if (spare.length < SPARE_BUFFERS) spare.push(text);
    return { encoded: { body, records: indexes, bytes: body.length }, refused };
  }

  async write(batch: LineBatch, signal: AbortSignal): Promise<WriteResult> {
    if (batch.records.length === 0) return {};
    let res: Response;
    try {
      res = await this.post(batch.body, signal);
    } catch (err) {
      if (isTlsTrustError(err)) throw down(`influx: ${(err as Error).message}`);
      throw transient(`influx: ${signal.aborted ? 'no answer within the timeout' : (err as Error).message}`);
    }
    return outcome(res, batch, this.config);
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }

  private post(body: Buffer, signal: AbortSignal): Promise<Response> {
    return new Promise((resolve, reject) => {
      const req = this.client.request(
        this.target,
        { method: 'POST', agent: this.agent, signal, headers: { ...this.headers, 'Content-Length': String(body.length) } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), retryAfter: res.headers['retry-after'] }),
          );
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }
}

function writeUrl(config: InfluxConfig): URL {
  const url = new URL(config.url);
  const base = url.pathname.replace(/\/$/, '');
  if (config.version === 1) {
    url.pathname = `${base}/write`;
    url.searchParams.set('db', config.database ?? '');
    if (config.retentionPolicy) url.searchParams.set('rp', config.retentionPolicy);
  } else {
    url.pathname = `${base}/api/v2/write`;
    if (config.org) url.searchParams.set('org', config.org);
    url.searchParams.set('bucket', config.bucket ?? '');
  }
  url.searchParams.set('precision', 'ns');
  return url;
}

function errorText(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: string; message?: string };
    return parsed.error ?? parsed.message ?? body;
  } catch {
    return body.trim().slice(0, 500);
  }
}

/** Seconds or an HTTP date, as Retry-After may say; capped at an hour. */
export function retryAfterMs(value: string | undefined): number | undefined {
  if (!value) return undefined;
  const ms = /^\d+$/.test(value.trim()) ? Number(value) * 1000 : Date.parse(value) - Date.now();
  return Number.isFinite(ms) ? Math.min(Math.max(ms, 0), 3_600_000) : undefined;
}

function outcome(res: Response, batch: LineBatch, config: InfluxConfig): WriteResult {
  const { status } = res;
  if (status >= 200 && status < 300) return {};
  const text = `influx: HTTP ${status}: ${errorText(res.body)}`;
  if (status === 401 || status === 403)
    return fail(down(`${text} (check the ${config.version === 1 ? 'username and password' : 'token'})`));
  if (status === 404) return fail(down(`${text} (wrong database, bucket, org or API version?)`));
  if (status === 429 || status === 503) return fail(transient(text, retryAfterMs(res.retryAfter)));
  if (status === 400 || status === 413 || status === 422) return partialWrite(text, batch, config);
  return fail(transient(text, retryAfterMs(res.retryAfter)));
}

const fail = (err: Error): never => {
  throw err;
};

/**
 * A 400 may be a partial write: InfluxDB stored the good lines. Lines it could not parse it names
 * (`unable to parse '<line>'`); points it dropped for other reasons (a field type conflict, outside
 * the retention) it only counts (`dropped=N`). When nothing unnamed was dropped, the named lines are
 * rejected and the rest is confirmed; otherwise the batch is refused as a whole and the forwarder
 * splits it until each bad line stands alone (resending good lines is harmless: the same point
 * overwrites itself).
 */
function partialWrite(text: string, batch: LineBatch, config: InfluxConfig): WriteResult {
  const dropped = /partial write:[\s\S]*dropped=(\d+)/.exec(text);
  if (dropped && Number(dropped[1]) === 0 && batch.records.length > 1) {
    const lines = (config.gzipLevel > 0 ? gunzipSync(batch.body) : batch.body).toString().split('\n');
    const named = lines.flatMap((line, i) => (text.includes(`unable to parse '${line}'`) ? [i] : []));
    if (named.length > 0) return { rejected: named.map((i) => ({ index: batch.records[i], reason: text.slice(0, 1000) })) };
  }
  return fail(invalid(text.slice(0, 1000)));
}
