// The real upstream servers the sync tests and benchmarks talk to, on loopback and free ports, in temp dirs:
// PostgreSQL 15 (the machine's cluster, a fresh database per test file), InfluxDB 1.x,
// VictoriaMetrics and Mosquitto (one process each per test file), and a TCP proxy that can cut links.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

const tempDir = (prefix: string) => mkdtempSync(join(tmpdir(), prefix));
const cleanup = (dir: string) => rmSync(dir, { recursive: true, force: true });

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export async function until<T>(
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 20_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ---- PostgreSQL ----

export const PG_USER = 'edge_test';
export const PG_PASSWORD = 'edge_test_pw';

function asPostgres(sql: string): void {
  execFileSync('runuser', ['-u', 'postgres', '--', 'psql', '-qXc', sql], { stdio: 'pipe' });
}

/** The machine's PostgreSQL 15 cluster, running, with a password login for the tests. */
export function ensurePostgres(): void {
  const running = () => {
    try {
      execFileSync('pg_ctlcluster', ['15', 'main', 'status'], { stdio: 'pipe' });
      return true;
    } catch {
      return false;
    }
  };
  if (!running()) {
    try {
      execFileSync('pg_ctlcluster', ['15', 'main', 'start'], { stdio: 'pipe' });
    } catch (err) {
      // Test files start in parallel: another may have started it a moment before (its start fails
      // this one's). Running after all is what was wanted.
      for (let i = 0; i < 50 && !running(); i++) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
      if (!running()) throw err;
    }
  }
  // Test files run in parallel: two of them altering the role at once make one fail ("tuple
  // concurrently updated"); it tries again.
  for (let attempt = 1; ; attempt++) {
    try {
      asPostgres(
        `DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='${PG_USER}') THEN CREATE ROLE ${PG_USER} LOGIN CREATEDB; END IF; END$$; ALTER ROLE ${PG_USER} PASSWORD '${PG_PASSWORD}'`,
      );
      return;
    } catch (err) {
      if (attempt >= 10) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50 * attempt);
    }
  }
}

export interface TestDatabase {
  name: string;
  url: string;
  /** host:port of the server, for proxies. */
  port: number;
  query<R extends pg.QueryResultRow = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]>;
  drop(): Promise<void>;
}

export async function createDatabase(): Promise<TestDatabase> {
  ensurePostgres();
  const name = `edge_test_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = new pg.Client({ host: '127.0.0.1', port: 5432, user: PG_USER, password: PG_PASSWORD, database: 'postgres' });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const client = new pg.Client({ host: '127.0.0.1', port: 5432, user: PG_USER, password: PG_PASSWORD, database: name });
  await client.connect();
  return {
    name,
    port: 5432,
    url: `postgres://${PG_USER}@127.0.0.1:5432/${name}`,
    query: async (sql, params) => (await client.query(sql, params)).rows,
    async drop() {
      await client.end();
      const a = new pg.Client({ host: '127.0.0.1', port: 5432, user: PG_USER, password: PG_PASSWORD, database: 'postgres' });
      await a.connect();
      try {
        // FORCE ends the sessions still open on it; one that is just ending can make a try fail, and an
        // autovacuum worker on a freshly filled table (the sync bench's million rows) is not ours to end: wait for it.
        await until(() => a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).then(() => true), 120_000, `DROP DATABASE ${name}`);
      } finally {
        await a.end();
      }
    },
  };
}

/** A private PostgreSQL 15 server (initdb in a temp dir, run as the postgres user), with TLS from the given files. */
export async function startPostgresServer(tls: { cert: string; key: string }): Promise<ServerProcess & { database: string }> {
  const bin = '/usr/lib/postgresql/15/bin';
  const dir = tempDir('pg-');
  const port = await freePort();
  writeFileSync(join(dir, 'pw'), PG_PASSWORD);
  copyFileSync(tls.cert, join(dir, 'server.pem'));
  copyFileSync(tls.key, join(dir, 'server.key'));
  chmodSync(join(dir, 'server.key'), 0o600);
  execFileSync('chown', ['-R', 'postgres:postgres', dir]);
  const asPg = (cmd: string, args: string[]) => execFileSync('runuser', ['-u', 'postgres', '--', cmd, ...args], { stdio: 'pipe' });
  asPg(`${bin}/initdb`, ['-D', `${dir}/data`, '-U', PG_USER, '-A', 'scram-sha-256', `--pwfile=${dir}/pw`, '--no-sync']);
  const settings = [
    `port=${port}`,
    "listen_addresses='127.0.0.1'",
    `unix_socket_directories='${dir}'`,
    'ssl=on',
    `ssl_cert_file='${dir}/server.pem'`,
    `ssl_key_file='${dir}/server.key'`,
    'fsync=off',
  ];
  writeFileSync(join(dir, 'data', 'postgresql.auto.conf'), `${settings.join('\n')}\n`);
  asPg(`${bin}/pg_ctl`, ['-D', `${dir}/data`, '-l', `${dir}/log`, '-w', 'start']);
  return {
    port,
    dir,
    database: 'postgres',
    url: `postgres://${PG_USER}@localhost:${port}/postgres`,
    async stop() {
      try {
        asPg(`${bin}/pg_ctl`, ['-D', `${dir}/data`, '-m', 'immediate', '-w', 'stop']);
      } finally {
        cleanup(dir);
      }
    },
  };
}

// ---- processes ----

export interface ServerProcess {
  port: number;
  url: string;
  dir: string;
  /** The server's process id, for reading its CPU time; undefined for PostgreSQL's many backends. */
  pid?: number;
  stop(): Promise<void>;
}

function startProcess(cmd: string, args: string[], dir: string): ChildProcess {
  const child = spawn(cmd, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-4000)));
  child.on('exit', (code) => {
    if (code) process.stderr.write(`${cmd} exited ${code}: ${err}\n`);
  });
  return child;
}

async function stopProcess(child: ChildProcess, dir: string): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
  cleanup(dir);
}

async function httpUp(url: string): Promise<boolean> {
  try {
    await fetch(url);
    return true;
  } catch {
    return false;
  }
}

type Influxd = ServerProcess & { query(q: string): Promise<unknown>; createDatabase(name: string): Promise<void> };

/**
 * InfluxDB 1.x from Debian's package; with `auth`, an admin user `admin` / `admin-pw` exists. A free
 * port can be taken by another file's server before influxd binds it: then it starts again on others.
 */
export async function startInfluxd(opts: { auth?: boolean } = {}): Promise<Influxd> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startInfluxdOnce(opts);
    } catch (err) {
      if (attempt === 3) throw err;
    }
  }
}

async function startInfluxdOnce(opts: { auth?: boolean }): Promise<Influxd> {
  const dir = tempDir('influxd-');
  const [port, rpcPort] = [await freePort(), await freePort()];
  const conf = join(dir, 'influxdb.conf');
  writeFileSync(
    conf,
    `reporting-disabled = true
bind-address = "127.0.0.1:${rpcPort}"
[meta]
  dir = "${dir}/meta"
  logging-enabled = false
[data]
  dir = "${dir}/data"
  wal-dir = "${dir}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:${port}"
  auth-enabled = ${opts.auth ? 'true' : 'false'}
  log-enabled = false
`,
  );
  const child = startProcess('influxd', ['run', '-config', conf], dir);
  const url = `http://127.0.0.1:${port}`;
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  try {
    await until(() => exited() || httpUp(`${url}/ping`), 20_000, 'influxd');
    const auth = { Authorization: `Basic ${Buffer.from('admin:admin-pw').toString('base64')}` };
    const ask = async (q: string, headers: Record<string, string>) => {
      const res = await fetch(`${url}/query?${new URLSearchParams({ q, epoch: 'ms' })}`, { method: 'POST', headers });
      const body = (await res.json()) as { error?: string; results?: { error?: string }[] };
      const error = body.error ?? body.results?.find((r) => r.error)?.error;
      if (!res.ok || error) throw new Error(`influxd: ${q}: HTTP ${res.status} ${error ?? ''}`);
      return body;
    };
    if (opts.auth) await ask("CREATE USER admin WITH PASSWORD 'admin-pw' WITH ALL PRIVILEGES", {});
    // The server answering is this one: it runs, and (with auth) refuses what has no password.
    const refuses = opts.auth
      ? await ask('SHOW DATABASES', {}).then(
          () => false,
          () => true,
        )
      : true;
    if (exited() || !refuses) throw new Error(`influxd: port ${port} is another server's`);
    const query = (q: string) => ask(q, opts.auth ? auth : {});
    return influxd(child, dir, url, port, query);
  } catch (err) {
    await stopProcess(child, dir);
    throw err;
  }
}

function influxd(child: ChildProcess, dir: string, url: string, port: number, query: (q: string) => Promise<unknown>): Influxd {
  return {
    port,
    url,
    dir,
    query,
    createDatabase: async (name) => void (await query(`CREATE DATABASE "${name}"`)),
    pid: child.pid,
    stop: () => stopProcess(child, dir),
  };
}

/** VictoriaMetrics from Debian's package (it takes /api/v2/write, InfluxDB 2's write API). */
export async function startVictoriaMetrics(): Promise<ServerProcess> {
  const dir = tempDir('victoria-');
  const port = await freePort();
  const child = startProcess(
    'victoria-metrics',
    [
      `-httpListenAddr=127.0.0.1:${port}`,
      `-storageDataPath=${dir}/data`,
      '-retentionPeriod=100y',
      '-search.latencyOffset=0s',
      '-loggerLevel=ERROR',
    ],
    dir,
  );
  const url = `http://127.0.0.1:${port}`;
  await until(() => httpUp(`${url}/health`), 20_000, 'victoria-metrics');
  return { port, url, dir, stop: () => stopProcess(child, dir) };
}

/** Mosquitto from Debian's package; with `users`, a password file and no anonymous access. */
export async function startMosquitto(
  opts: { users?: Record<string, string>; tls?: { cert: string; key: string }; extra?: string[] } = {},
): Promise<ServerProcess> {
  const dir = tempDir('mosquitto-');
  const port = await freePort();
  const lines = [
    `listener ${port} 127.0.0.1`,
    'user root',
    'persistence false',
    'log_dest stderr',
    'log_type error',
    'max_queued_messages 0',
  ];
  if (opts.users) {
    const file = join(dir, 'passwd');
    writeFileSync(file, '');
    for (const [u, p] of Object.entries(opts.users)) execFileSync('mosquitto_passwd', ['-b', file, u, p]);
    lines.push('allow_anonymous false', `password_file ${file}`);
  } else {
    lines.push('allow_anonymous true');
  }
  if (opts.tls) lines.push(`certfile ${opts.tls.cert}`, `keyfile ${opts.tls.key}`);
  lines.push(...(opts.extra ?? []));
  writeFileSync(join(dir, 'mosquitto.conf'), `${lines.join('\n')}\n`);
  const child = startProcess('mosquitto', ['-c', join(dir, 'mosquitto.conf')], dir);
  await until(
    () =>
      new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      }),
    10_000,
    'mosquitto',
  );
  return { port, url: `${opts.tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${port}`, dir, pid: child.pid, stop: () => stopProcess(child, dir) };
}

// ---- links ----

/** How the link of a TcpProxy behaves: each chunk delayed, some connections reset, or everything held. */
export interface LinkState {
  latencyMs: number;
  /** Chance that a chunk resets its connection instead of passing (a lossy link the peers give up on). */
  resetChance: number;
  /** Nothing passes, nothing closes (a black hole): reads are paused until the link is restored. */
  stalled: boolean;
}

const HEALTHY: LinkState = { latencyMs: 0, resetChance: 0, stalled: false };

/**
 * A loopback TCP proxy whose link can be cut (every connection dropped, new ones refused), slowed
 * (latency, resets), stalled (nothing passes) and restored.
 */
export class TcpProxy {
  private readonly server = net.createServer((client) => this.accept(client));
  private readonly sockets = new Set<net.Socket>();
  private up = true;
  private link: LinkState = HEALTHY;
  port = 0;

  constructor(
    private readonly targetPort: number,
    private readonly random: () => number = Math.random,
  ) {}

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  private accept(client: net.Socket): void {
    if (!this.up) return void client.destroy();
    const upstream = net.connect(this.targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => {});
      if (this.link.stalled) s.pause();
    }
    this.forward(client, upstream);
    this.forward(upstream, client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }

  /** Chunks pass in order, each after the link's latency (timers of one delay fire in order). */
  private forward(from: net.Socket, to: net.Socket): void {
    from.on('data', (chunk) => {
      if (this.link.resetChance > 0 && this.random() < this.link.resetChance) return void from.destroy();
      if (this.link.latencyMs === 0) return void to.write(chunk);
      setTimeout(() => to.writable && to.write(chunk), this.link.latencyMs);
    });
    from.on('end', () => setTimeout(() => to.end(), this.link.latencyMs));
  }

  cut(): void {
    this.up = false;
    for (const s of this.sockets) s.destroy();
  }

  /** Slow the link (and reset some connections), until restored. */
  slow(latencyMs: number, resetChance = 0): void {
    this.link = { latencyMs, resetChance, stalled: false };
  }

  /** Let nothing through and close nothing, until restored. */
  stall(): void {
    this.link = { ...this.link, stalled: true };
    for (const s of this.sockets) s.pause();
  }

  restore(): void {
    this.up = true;
    this.link = HEALTHY;
    for (const s of this.sockets) s.resume();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
