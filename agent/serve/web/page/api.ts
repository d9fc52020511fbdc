// The agent's public API as the page calls it: the login cookie, a new access token from the
// refresh cookie when one expires, and errors as the API gives them ({message, details}).
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

export interface Me {
  name: string;
  role: 'viewer' | 'operator' | 'admin';
}

let loggedOut: () => void = () => {};
/** Called when the session has ended (expired, logged out elsewhere, password changed). */
export function onLoggedOut(f: () => void): void {
  loggedOut = f;
}

function send(method: string, path: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = { Accept: 'application/json', 'X-Requested-With': 'edge-agent-page' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  return fetch(path, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) });
}

let refreshing: Promise<boolean> | undefined;
/** A new access token for this login (the refresh cookie); false when the session is over. */
function refresh(): Promise<boolean> {
  refreshing ??= send('POST', '/api/auth/refresh', {})
    .then((r) => r.ok)
    .catch(() => false)
    .finally(() => (refreshing = undefined));
  return refreshing;
}

const NO_REFRESH = new Set(['/api/auth/login', '/api/auth/refresh', '/api/auth/logout']);

/** Call the API: the answer's JSON, or ApiError. `accept` lists error statuses whose body is an answer (503 from /health/ready). */
async function call<T>(method: string, path: string, body?: unknown, accept: number[] = []): Promise<T> {
  let res = await send(method, path, body);
  if (res.status === 401 && !NO_REFRESH.has(path)) {
    if (await refresh()) res = await send(method, path, body);
    if (res.status === 401) loggedOut();
  }
  const text = await res.text();
  const json =
    text && (res.headers.get('content-type') ?? '').includes('json')
      ? (JSON.parse(text) as { message?: string; details?: unknown })
      : undefined;
  if (!res.ok && !accept.includes(res.status))
    throw new ApiError(res.status, json?.message ?? `${res.status} ${res.statusText}`, json?.details);
  return (json ?? text) as T;
}

export const get = <T>(path: string, accept?: number[]) => call<T>('GET', path, undefined, accept);
export const post = <T>(path: string, body: unknown = {}) => call<T>('POST', path, body);
export const put = <T>(path: string, body: unknown) => call<T>('PUT', path, body);
export const del = <T>(path: string) => call<T>('DELETE', path);

/** A query string from defined values; arrays repeat the key. */
export function query(params: Record<string, string | number | string[] | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === '') continue;
    for (const item of Array.isArray(v) ? v : [v]) q.append(k, String(item));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}
