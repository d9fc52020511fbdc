// The end-to-end smoke test of a built agent (the x64 binary here, the arm64 one under qemu): start
// it, publish a reading over MQTT, read it back over the HTTP API, see it forwarded to PostgreSQL,
// the status page and Swagger UI served.
// `node dist/scripts/binary/smoke.js -- <command...>` runs it against any command that is the agent.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import mqtt from 'mqtt';
import { stringify } from 'yaml';
import { statusMb } from '../bench/processes.js';
import { createDatabase, PG_PASSWORD, until } from '../servers.js';

export interface SmokeResult {
  version: string;
  /** From spawn to the `ready` log line. */
  readyMs: number;
  /** Resident memory 5 s after the reading went through (of qemu, for an emulated binary). */
  idleRssMb: number;
  /** From publish to the row in PostgreSQL. */
  forwardedMs: number;
}

/** `command`: how to run the agent, e.g. ['dist/edge-agent-linux-x64'] or ['qemu-aarch64-static', '-L', '/usr/aarch64-linux-gnu', 'dist/edge-agent-linux-arm64']. */
export async function smokeTest(command: string[], timeoutMs = 120_000): Promise<SmokeResult> {
  const dir = mkdtempSync(join(tmpdir(), 'edge-agent-smoke-'));
  const db = await createDatabase();
  const [program, ...args] = command;
  try {
    const version = await new Promise<string>((resolve, reject) => {
      const p = spawn(program, [...args, '--version'], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      p.stdout.on('data', (d) => (out += d));
      p.on('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`--version exited ${code}`))));
    });
    const config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      stringify({
        agent: { id: 'smoke', dataDir: join(dir, 'data') },
        broker: { mqtt: { host: '127.0.0.1', port: 0 } },
        web: { http: { host: '127.0.0.1', port: 0 } },
        // A pattern: RE2's WebAssembly, an asset of the binary, runs it.
        ingest: {
          schemas: [
            {
              name: 'room',
              topics: ['smoke/+'],
              fields: { t: 'float', room: { type: 'string', pattern: '^(k+i+)+tchen$', required: true } },
            },
          ],
        },
        sinks: [{ name: 'cloud', type: 'postgres', url: db.url, password: PG_PASSWORD, table: 'smoke', batch: { maxAgeMs: 50 } }],
      }),
    );
    const started = performance.now();
    const agent = spawn(program, [...args, 'run', '--config', config], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<number | null>((resolve) => agent.on('exit', resolve));
    try {
      const listeners = await new Promise<Record<string, string>>((resolve, reject) => {
        createInterface({ input: agent.stdout }).on('line', (line) => {
          if (line.includes('"msg":"ready"')) resolve((JSON.parse(line) as { listeners: Record<string, string> }).listeners);
        });
        void exited.then((code) => reject(new Error(`the agent exited (${code}) before it was ready`)));
      });
      const readyMs = performance.now() - started;
      const port = (name: string) => Number(listeners[name].slice(listeners[name].lastIndexOf(':') + 1));

      const published = performance.now();
      const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port('mqtt')}`);
      await client.publishAsync('smoke/kitchen', JSON.stringify({ t: 21.5, room: 'kkiitchen' }), { qos: 1 });
      await client.publishAsync('smoke/kitchen', JSON.stringify({ t: 99, room: `${'k'.repeat(40)}!` }), { qos: 1 }); // refused by the pattern
      await client.endAsync();

      const password = readFileSync(join(dir, 'data/initial-admin-password'), 'utf8').trim();
      const auth = `Basic ${Buffer.from(`admin:${password}`).toString('base64')}`;
      await until(
        async () => {
          const res = await fetch(`http://127.0.0.1:${port('http')}/api/data?topic=smoke/%23`, { headers: { authorization: auth } });
          const body = (await res.json()) as { readings?: { payload: unknown }[] };
          return res.ok && body.readings?.length === 1 && JSON.stringify(body.readings[0].payload) === '{"t":21.5,"room":"kkiitchen"}';
        },
        timeoutMs,
        'the reading over the HTTP API',
      );
      await until(
        async () =>
          (await db.query("SELECT 1 FROM smoke WHERE agent_id = 'smoke' AND payload->>'t' = '21.5'").catch(() => [])).length === 1,
        timeoutMs,
        'the reading in PostgreSQL',
      );
      const forwardedMs = performance.now() - published;
      await checkPage(`http://127.0.0.1:${port('http')}`);
      await checkDocs(`http://127.0.0.1:${port('http')}`, auth);
      await new Promise((r) => setTimeout(r, 5000));
      const idleRssMb = statusMb(agent.pid!, 'VmRSS');
      agent.kill('SIGTERM');
      const code = await exited;
      if (code !== 0) throw new Error(`the agent exited ${code} on SIGTERM`);
      return { version, readyMs, idleRssMb, forwardedMs };
    } finally {
      agent.kill('SIGKILL');
    }
  } finally {
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The status page is served, its script and stylesheet with it (assets of the binary). */
async function checkPage(base: string): Promise<void> {
  const index = await fetch(`${base}/`);
  const html = await index.text();
  if (!index.ok || !html.includes('<div id="app">')) throw new Error(`GET / answered ${index.status}, not the status page`);
  const files = [...html.matchAll(/(?:src|href)="\/(main-[^"]+)"/g)].map((m) => m[1]);
  if (files.length !== 2) throw new Error(`the status page names ${files.length} assets, not its script and stylesheet`);
  for (const file of files) {
    const res = await fetch(`${base}/${file}`, { headers: { 'accept-encoding': 'br' } });
    if (!res.ok || (await res.arrayBuffer()).byteLength === 0) throw new Error(`GET /${file} answered ${res.status}`);
  }
}

/** Swagger UI is served with its files (assets of the binary, its package's folder for the bundle). */
async function checkDocs(base: string, authorization: string): Promise<void> {
  const index = await fetch(`${base}/api/docs/`, { headers: { authorization } });
  const html = await index.text();
  const files = [...html.matchAll(/(?:src|href)="\.\/(static\/[^"]+)"/g)].map((m) => m[1]);
  if (!index.ok || !files.includes('static/swagger-ui-bundle.js'))
    throw new Error(`GET /api/docs/ answered ${index.status}, not Swagger UI`);
  for (const file of files) {
    const res = await fetch(`${base}/api/docs/${file}`, { headers: { authorization } });
    if (!res.ok || (await res.arrayBuffer()).byteLength === 0) throw new Error(`GET /api/docs/${file} answered ${res.status}`);
  }
}

if (import.meta.filename === process.argv[1]) {
  const command = process.argv.slice(2).filter((a) => a !== '--');
  smokeTest(command).then(
    (r) =>
      console.log(
        `smoke test passed: ${r.version}; ready in ${r.readyMs.toFixed(0)} ms, forwarded in ${r.forwardedMs.toFixed(0)} ms, idle RSS ${r.idleRssMb.toFixed(0)} MB`,
      ),
    (err: Error) => {
      console.error(`smoke test failed: ${err.message}`);
      process.exit(1);
    },
  );
}
