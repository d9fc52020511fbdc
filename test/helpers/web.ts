/* eslint-disable @typescript-eslint/no-explicit-any -- answers are read as each test chooses */
// Calls to a test agent's web API: as the first-start admin (HTTP Basic), as other users, or with
// no credentials; JSON in and out.
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { join } from 'node:path';
import type { InProcessAgent } from './agent.js';

export interface Answer<T = unknown> {
  status: number;
  body: T;
  headers: Headers;
}

export type Credentials = { basic: [string, string] } | { bearer: string } | { cookie: string } | undefined;

export function authHeader(creds: Credentials): Record<string, string> {
  if (!creds) return {};
  if ('basic' in creds) return { authorization: `Basic ${Buffer.from(creds.basic.join(':')).toString('base64')}` };
  if ('bearer' in creds) return { authorization: `Bearer ${creds.bearer}` };
  return { cookie: creds.cookie };
}

export class WebClient {
  constructor(
    readonly base: string,
    readonly creds: Credentials,
  ) {}

  as(creds: Credentials): WebClient {
    return new WebClient(this.base, creds);
  }

  async call<T = any>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer<T>> {
    const res = await fetch(`${this.base}${path}`, {
      method,
      headers: { ...authHeader(this.creds), ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = text;
    if ((res.headers.get('content-type') ?? '').startsWith('application/json')) parsed = text ? JSON.parse(text) : undefined;
    return { status: res.status, body: parsed as T, headers: res.headers };
  }

  get = <T = any>(path: string, headers?: Record<string, string>) => this.call<T>('GET', path, undefined, headers);
  post = <T = any>(path: string, body?: unknown, headers?: Record<string, string>) => this.call<T>('POST', path, body ?? {}, headers);
  put = <T = any>(path: string, body: unknown) => this.call<T>('PUT', path, body);
  del = <T = any>(path: string) => this.call<T>('DELETE', path);
}

/** The password the first start gave `admin`. */
export const adminPassword = (agent: InProcessAgent) => readFileSync(join(agent.dataDir, 'initial-admin-password'), 'utf8').trim();

/** The agent's API as its admin, over HTTP Basic. */
export function adminClient(agent: InProcessAgent): WebClient {
  return new WebClient(`http://127.0.0.1:${agent.port('http')}`, { basic: ['admin', adminPassword(agent)] });
}

/** A request with what fetch cannot set: a source address, a Host header, sockets of its own. */
export function rawRequest(
  method: string,
  url: string,
  opts: { body?: unknown; headers?: Record<string, string>; localAddress?: string; agent?: HttpAgent } = {},
): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const data = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const headers = {
      ...(data === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(data)) }),
      ...opts.headers,
    };
    const req = httpRequest(url, { method, localAddress: opts.localAddress, agent: opts.agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({
          status: res.statusCode!,
          body: (res.headers['content-type'] ?? '').startsWith('application/json') && text ? JSON.parse(text) : text,
        });
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

/** A JSON POST from a chosen loopback source address, through `agent`'s sockets. */
export const postFrom = (url: string, body: unknown, opts: { localAddress?: string; agent?: HttpAgent } = {}) =>
  rawRequest('POST', url, { ...opts, body });
