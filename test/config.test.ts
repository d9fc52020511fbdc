import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, envNameFor } from '../agent/config/load.js';
import { loadConfig, redact } from '../agent/config-schema.js';
import { filesystemSize } from '../agent/retention/config.js';
import { CLI, cleanup, tempDir, writeIn } from './helpers/agent.js';
import { makePki } from './helpers/pki.js';

const exec = promisify(execFile);
const dir = tempDir();
afterAll(() => cleanup(dir));

const file = (name: string, text: string) => writeIn(dir, name, text);

function problems(path: string | undefined, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    loadConfig(path, env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('config was accepted');
}

async function cli(args: string[], env: NodeJS.ProcessEnv = {}, input?: string) {
  const child = exec(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, cwd: dir });
  if (input !== undefined) {
    child.child.stdin!.end(input);
  }
  try {
    const { stdout, stderr } = await child;
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('config loading', () => {
  it('uses built-in defaults when no file exists', () => {
    const { config, path } = loadConfig(undefined, {});
    expect(path).toBeUndefined();
    expect(config.broker.mqtt).toEqual({ enabled: true, host: '0.0.0.0', port: 1883 });
    expect(config.web.http.port).toBe(8080);
    expect(config.agent.dataDir).toBe('./data');
    expect(config.broker.allowAnonymous).toBe('loopback');
    expect(config.agent.id.length).toBeGreaterThan(0);
    expect(config.agent.heap).toBe('small');
  });

  it('agent.heap is small or fast, and anything else is named', () => {
    expect(loadConfig(file('fast.yaml', 'agent: { heap: fast }'), {}).config.agent.heap).toBe('fast');
    expect(problems(file('huge.yaml', 'agent: { heap: huge }'))).toEqual(['agent.heap: must be "small" or "fast"']);
  });

  it('names each problem as path: reason', () => {
    const path = file(
      'bad.yaml',
      [
        'agent: { idd: x }',
        'log: { level: loud }',
        'broker:',
        '  mqtt: { port: 70000 }',
        '  allowAnonymous: maybe',
        '  acl:',
        '    - { user: a, role: b }',
        'web:',
        '  http: { port: "eighty" }',
      ].join('\n'),
    );
    expect(problems(path)).toEqual([
      'agent.idd: unknown key',
      'log.level: must be "fatal" or "error" or "warn" or "info" or "debug" or "trace" or "silent"',
      'broker.mqtt.port: must be <= 65535',
      'broker.allowAnonymous: must be "loopback" or a boolean',
      'broker.acl[0]: must set exactly one of user, role, anonymous, all',
      'web.http.port: must be integer',
    ]);
  });

  it('reports YAML syntax errors with line and column', () => {
    const path = file('syntax.yaml', 'broker:\n  mqtt: { port: 1883\n');
    const [p] = problems(path);
    expect(p).toMatch(/syntax\.yaml:\d+:\d+: /);
  });

  it('overrides any key from the environment and rejects unknown variables', () => {
    const path = file('env.yaml', 'broker: { mqtt: { port: 1000 } }\n');
    const env = {
      EDGE_AGENT_BROKER__MQTT__PORT: '1884',
      EDGE_AGENT_BROKER__ALLOW_ANONYMOUS: 'false',
      EDGE_AGENT_BROKER__ACL: '[{ role: sensor, publish: ["s/%u/#"] }]',
      EDGE_AGENT_LOG__LEVEL: 'debug',
    };
    const { config } = loadConfig(path, env);
    expect(config.broker.mqtt.port).toBe(1884);
    expect(config.broker.allowAnonymous).toBe(false);
    expect(config.broker.acl).toEqual([{ role: 'sensor', publish: ['s/%u/#'], subscribe: [] }]);
    expect(config.log.level).toBe('debug');
    expect(envNameFor(['broker', 'limits', 'maxPayloadBytes'])).toBe('EDGE_AGENT_BROKER__LIMITS__MAX_PAYLOAD_BYTES');
    expect(problems(path, { EDGE_AGENT_BROKER__MQTT__PORTT: '1' })).toEqual([
      'EDGE_AGENT_BROKER__MQTT__PORTT: no config key has this name',
    ]);
    expect(problems(path, { EDGE_AGENT_BROKER__MQTT__PORT: 'x' })).toEqual(['broker.mqtt.port: must be integer']);
  });

  it('reads secrets from files, by key or by *_FILE variable, and redacts them', () => {
    const secret = file('pass.txt', 's3cret\n');
    const path = file('secret.yaml', `web: { https: { passphraseFile: ${secret} } }\n`);
    expect(loadConfig(path, {}).config.web.https.passphrase).toBe('s3cret');
    const viaEnv = loadConfig(undefined, { EDGE_AGENT_BROKER__MQTTS__PASSPHRASE_FILE: secret }).config;
    expect(viaEnv.broker.mqtts.passphrase).toBe('s3cret');
    expect(JSON.stringify(redact(viaEnv))).not.toContain('s3cret');
    expect(problems(undefined, { EDGE_AGENT_BROKER__MQTTS__PASSPHRASE_FILE: join(dir, 'missing') })).toEqual([
      `broker.mqtts.passphraseFile: cannot read ${join(dir, 'missing')}: ENOENT`,
    ]);
  });

  it('sinks: the type picks the keys; errors name the sink; names are unique; secrets by sink name from env or file', () => {
    const bad = file(
      'sinks-bad.yaml',
      `sinks:
  - { name: cloud, type: postgres, url: "postgres://u@h/db", tabel: x }
  - { name: metrics, type: influx, url: "http://h:8086" }
  - { name: up, type: kafka }
  - { type: mqtt, url: "mqtt://h" }
`,
    );
    expect(problems(bad)).toEqual([
      'sinks[0].tabel: unknown key',
      'sinks[1].database: is required',
      'sinks[2].type: must be "postgres" or "influx" or "mqtt"',
      'sinks[3].name: is required',
    ]);
    const dup = file(
      'sinks-dup.yaml',
      'sinks:\n  - { name: a, type: mqtt, url: "mqtt://h" }\n  - { name: a, type: mqtt, url: "mqtt://k" }\n',
    );
    expect(problems(dup)).toEqual(['sinks[1].name: another sink is named a']);
    const tokenFile = file('token', 'from-file\n');
    const ok = file(
      'sinks-ok.yaml',
      `sinks:
  - { name: cloud-db, type: postgres, url: "postgres://u@h/db" }
  - { name: metrics, type: influx, url: "http://h:8086", version: 2, bucket: b, tokenFile: ${tokenFile} }
`,
    );
    const { config } = loadConfig(ok, { EDGE_AGENT_SINKS__CLOUD_DB__PASSWORD: 'from-env', EDGE_AGENT_SINKS__METRICS__GZIP_LEVEL: '1' });
    expect(config.sinks[0]).toMatchObject({ name: 'cloud-db', password: 'from-env', table: 'telemetry', batch: { maxRecords: 5000 } });
    expect(config.sinks[1]).toMatchObject({ token: 'from-file', gzipLevel: 1 });
    expect(redact(config).sinks).toMatchObject([{ password: '***' }, { token: '***' }]);
    expect(problems(ok, { EDGE_AGENT_SINKS__NOPE__PASSWORD: 'x' })).toEqual([
      'EDGE_AGENT_SINKS__NOPE__PASSWORD: no config key has this name',
    ]);
  });

  it('retention and rollups: a store rule keeps something, sinks take kept widths, watermarks in order', () => {
    const bad = file(
      'retention-bad.yaml',
      `retention:
  store: [{ topics: ["#"] }]
  rollups: [{ topics: ["#"], buckets: [1m] }]
  disk: { act: "30%", critical: 1GiB, reserve: 2GiB }
rollups: { buckets: [1m] }
sinks: [{ name: up, type: mqtt, url: "mqtt://h", rollups: [5m] }]
`,
    );
    expect(problems(bad)).toEqual([
      'retention.store[0]: give maxAge, maxBytes or both',
      'retention.rollups[0]: give maxAge, maxBytes or both',
      'sinks[0].rollups: 5m is not one of rollups.buckets (1m)',
      'retention.disk.act: 30% is more free space than retention.disk.warn (20%); want warn >= act >= critical >= reserve',
      'retention.disk.reserve: 2GiB is more free space than retention.disk.critical (1GiB); want warn >= act >= critical >= reserve',
    ]);
    const off = file(
      'rollups-off.yaml',
      'rollups: { enabled: false }\nsinks: [{ name: up, type: mqtt, url: "mqtt://h", rollups: [1m] }]\n',
    );
    expect(problems(off)).toEqual(['sinks[0].rollups: rollups.enabled is false']);
    // Percentages and sizes may mix: they are compared on the data directory's filesystem.
    const gib = filesystemSize(dir) / 1024 ** 3;
    const mixed = (act: string) =>
      file(
        'retention-mixed.yaml',
        `agent: { dataDir: ${JSON.stringify(join(dir, 'data'))} }\nretention: { disk: { warn: 1GiB, act: "${act}", critical: 0B, reserve: 0B } }\n`,
      );
    const under = `${((0.5 / gib) * 100).toFixed(4)}%`; // half a GiB of this filesystem
    const over = `${((2 / gib) * 100).toFixed(4)}%`; // two GiB of it
    expect(loadConfig(mixed(under), {}).config.retention.disk).toMatchObject({ warn: '1GiB', act: under });
    expect(problems(mixed(over))).toEqual([
      `retention.disk.act: ${over} is more free space than retention.disk.warn (1GiB) on this filesystem (${gib.toFixed(1)} GiB); want warn >= act >= critical >= reserve`,
    ]);
  });

  it('finds the file by --config, then $EDGE_AGENT_CONFIG, then ./edge-agent.yaml', async () => {
    file('edge-agent.yaml', 'agent: { id: from-cwd }\n');
    const other = file('other.yaml', 'agent: { id: from-env }\n');
    const explicit = file('explicit.yaml', 'agent: { id: from-flag }\n');
    expect((await cli(['config', 'print'])).stdout).toContain('id: from-cwd');
    expect((await cli(['config', 'print'], { EDGE_AGENT_CONFIG: other })).stdout).toContain('id: from-env');
    expect((await cli(['--config', explicit, 'config', 'print'], { EDGE_AGENT_CONFIG: other })).stdout).toContain('id: from-flag');
  });
});

describe('config commands', () => {
  it('config check exits 1 listing every problem, 0 when valid', async () => {
    const bad = file('check.yaml', 'broker: { mqtt: { port: -1, colour: red } }\n');
    const r = await cli(['config', 'check', '--config', bad]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('broker.mqtt.colour: unknown key');
    expect(r.stderr).toContain('broker.mqtt.port: must be >= 0');
    const good = file(
      'good.yaml',
      'broker: { mqtt: { port: 1999 } }\nretention: { disk: { warn: 1GB, act: 512MB, critical: 256MB, reserve: 64MB } }\n',
    );
    const ok = await cli(['config', 'check', '--config', good]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('config ok');
    expect(ok.stdout).not.toContain('note:'); // the control for the note below: a reserve of 64 MB is enough
    // A reserve smaller than what LevelDB's deletions write: raised, and said.
    const small = await cli(['config', 'check', '--config', file('small-reserve.yaml', 'retention: { disk: { reserve: 1MB } }\n')]);
    expect(small.code).toBe(0);
    expect(small.stdout).toContain('note: retention.disk.reserve (1MB: 1.0 MiB of this filesystem) is raised to 32 MiB');
  });

  it('config check names TLS halves, missing files, pairs that do not load or match, and client certificates with no CA to check them', async () => {
    const pki = makePki(dir);
    const { serverCert: cert, serverKey: key, ca } = pki;
    expect(
      problems(
        file(
          'half.yaml',
          `broker: { mqtts: { cert: ${cert} } }\nweb: { https: { key: ${key} } }\nsinks: [{ name: up, type: mqtt, url: "mqtts://b:8883", cert: ${cert} }]\n`,
        ),
      ),
    ).toEqual([
      'broker.mqtts.cert, broker.mqtts.key: a certificate needs its private key and a key its certificate: give both, or neither',
      'web.https.cert, web.https.key: a certificate needs its private key and a key its certificate: give both, or neither',
      'sinks[0].cert, sinks[0].key: a certificate needs its private key and a key its certificate: give both, or neither',
    ]);
    const missing = join(dir, 'no-such.pem');
    expect(
      problems(
        file('missing.yaml', `broker: { mqtts: { cert: ${cert}, key: ${missing} } }\nbuffer: { encryption: { keyFile: ${missing} } }\n`),
      ),
    ).toEqual([`broker.mqtts.key: cannot read ${missing}: ENOENT`, `buffer.encryption.keyFile: cannot read ${missing}: ENOENT`]);
    const other = pki.clientCert('other');
    const garbage = file('garbage.pem', 'not PEM at all\n');
    expect(
      problems(
        file(
          'pairs.yaml',
          [
            `broker: { mqtts: { cert: ${key}, key: ${cert} } }`, // swapped
            `web: { https: { cert: ${cert}, key: ${other.key} } }`, // another pair's key
            `sinks: [{ name: db, type: postgres, url: "postgres://e@db/x", cert: ${other.cert}, key: ${other.key}, ca: ${garbage} }]`,
          ].join('\n') + '\n',
        ),
      ),
    ).toEqual([
      `broker.mqtts.cert: ${key} holds no PEM certificate (it holds a private key: are cert and key swapped?)`,
      "web.https.cert, web.https.key: the key is not the certificate's (from another pair?)",
      `sinks[0].ca: ${garbage} holds no PEM certificate`,
    ]);
    for (const extra of ['clientCertificates: required', 'useIdentityAsUsername: true']) {
      expect(problems(file('noca.yaml', `broker: { mqtts: { cert: ${cert}, key: ${key}, ${extra} } }\n`))).toEqual([
        'broker.mqtts.ca: required with broker.mqtts.clientCertificates or useIdentityAsUsername (else any certificate the system trusts would log in)',
      ]);
    }
    // Positive control: matching pairs and a CA are fine, for the broker, the web and a sink.
    const good = `broker: { mqtts: { cert: ${cert}, key: ${key}, ca: ${ca}, clientCertificates: required, useIdentityAsUsername: true } }\nweb: { https: { cert: ${cert}, key: ${key} } }\nsinks: [{ name: up, type: mqtt, url: "mqtts://b:8883", cert: ${other.cert}, key: ${other.key}, ca: ${ca} }]\n`;
    expect(() => loadConfig(file('withca.yaml', good), {})).not.toThrow();
    const r = await cli(['config', 'check', '--config', join(dir, 'pairs.yaml')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('are cert and key swapped?');
  });

  it('a list or mapping in an environment variable that is not whole YAML is an error naming the variable', () => {
    expect(problems(undefined, { EDGE_AGENT_BROKER__ACL: '[{ role: sensor, publish: ["s/#"] }' })).toEqual([
      expect.stringMatching(/^EDGE_AGENT_BROKER__ACL: not valid YAML or JSON: /),
    ]);
    expect(problems(undefined, { EDGE_AGENT_INGEST__SCHEMAS: '{ name: x, topics: [a' })).toEqual([
      expect.stringMatching(/^EDGE_AGENT_INGEST__SCHEMAS: not valid YAML or JSON: /),
    ]);
    expect(loadConfig(undefined, { EDGE_AGENT_BROKER__ACL: '[{ role: sensor, publish: ["s/#"] }]' }).config.broker.acl).toEqual([
      { role: 'sensor', publish: ['s/#'], subscribe: [] },
    ]);
  });

  it('run with a bad config stops before listening, exit 1', async () => {
    const bad = file('run-bad.yaml', 'web: { http: { port: 99999 } }\n');
    const r = await cli(['run', '--config', bad]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('web.http.port: must be <= 65535');
  });

  it('config print shows defaults and redacts secrets', async () => {
    const r = await cli(['config', 'print'], { EDGE_AGENT_WEB__HTTPS__PASSPHRASE: 'topsecret' });
    expect(r.stdout).toContain('passphrase: "***" # set');
    expect(r.stdout).not.toContain('topsecret');
    expect(r.stdout).toContain('maxPayloadBytes: 262144');
  });

  it("config print keeps the schema's order whatever the file's, and marks what the file or the environment set", async () => {
    const conf = file('order.yaml', 'web: { http: { port: 9090 } }\nbroker: { mqtt: { port: 1999 } }\nagent: { id: ordered }\n');
    const r = await cli(['config', 'print', '--config', conf], { EDGE_AGENT_LOG__LEVEL: 'warn' });
    const top = r.stdout
      .split('\n')
      .filter((l) => /^[a-z]+:/.test(l))
      .map((l) => l.replace(/:.*/, ''));
    expect(top.slice(0, 3)).toEqual(['agent', 'log', 'broker']);
    expect(top.indexOf('web')).toBeGreaterThan(top.indexOf('broker'));
    expect(r.stdout).toMatch(/^ {2}id: ordered # set$/m);
    expect(r.stdout).toMatch(/^ {2}level: warn # set$/m);
    expect(r.stdout).toMatch(/^ {4}port: 1999 # set$/m);
    expect(r.stdout).toMatch(/^ {2}dataDir: \.\/data$/m); // a default: not marked
  });

  it('exits quietly when the reader of its output goes away (| head)', async () => {
    const child = spawn(process.execPath, [CLI, 'config', 'schema'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += String(d)));
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });

  it('logs lines for people with log.format pretty (auto: on a terminal), JSON otherwise', async () => {
    const firstLine = async (format?: string) => {
      const conf = file(
        `log-${format ?? 'auto'}.yaml`,
        `agent: { dataDir: ${join(dir, `logdata-${format ?? 'auto'}`)} }\nbroker: { mqtt: { port: 0 } }\nweb: { http: { port: 0 } }\n${format ? `log: { format: ${format} }\n` : ''}`,
      );
      const child = spawn(process.execPath, [CLI, '--config', conf], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      const line = await new Promise<string>((resolve) => child.stdout.once('data', (d) => resolve(String(d).split('\n')[0])));
      child.kill('SIGKILL');
      await new Promise((r) => child.on('close', r));
      return line;
    };
    expect(await firstLine('pretty')).toMatch(/^\[\d\d:\d\d:\d\d\] INFO: starting/);
    expect(JSON.parse(await firstLine())).toMatchObject({ msg: 'starting' }); // a pipe is no terminal: JSON
    expect(JSON.parse(await firstLine('json'))).toMatchObject({ msg: 'starting' });
  });

  it('config print masks credentials inside URLs: passwords and query values; the rest of the URL stays readable', async () => {
    const conf = file(
      'urls.yaml',
      [
        'sinks:',
        '  - { name: cloud, type: postgres, url: "postgres://edge:PgPass1@db.example:5432/fleet" }',
        '  - { name: metrics, type: influx, url: "http://ops:InfluxPass2@influx.example:8086", version: 1, database: t }',
        '  - { name: up, type: mqtt, url: "mqtts://dev:MqttPass3@broker.example:8883" }',
        'health:',
        '  alerts: { webhook: { url: "https://hooks.example/alert?token=HookTok4&team=ops" } }',
      ].join('\n') + '\n',
    );
    const r = await cli(['config', 'print', '--config', conf]);
    expect(r.code).toBe(0);
    for (const secret of ['PgPass1', 'InfluxPass2', 'MqttPass3', 'HookTok4']) expect(r.stdout).not.toContain(secret);
    expect(r.stdout).toContain('postgres://edge:***@db.example:5432/fleet');
    expect(r.stdout).toContain('mqtts://dev:***@broker.example:8883');
    expect(r.stdout).toContain('https://hooks.example/alert?token=***&team=***');
  });

  it('config schema prints the JSON Schema that rejects unknown keys', async () => {
    const schema = JSON.parse((await cli(['config', 'schema'])).stdout);
    expect(schema.additionalProperties).toBe(false);
    expect(schema.properties.broker.properties.mqtt.properties.port.default).toBe(1883);
  });

  it('--version, --help on every command, and usage errors exit 2', async () => {
    expect((await cli(['--version'])).stdout.trim()).toMatch(
      new RegExp(`^\\d+\\.\\d+\\.\\d+ \\(Node ${process.version.replaceAll('.', '\\.')}, linux-${process.arch}\\)$`),
    );
    for (const args of [
      ['--help'],
      ['run', '--help'],
      ['config', 'check', '--help'],
      ['user', 'add', '--help'],
      ['user', 'list', '--help'],
    ]) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout).toContain('Usage: edge-agent');
    }
    expect((await cli(['config', 'frobnicate'])).code).toBe(2);
    expect((await cli(['--no-such-flag'])).code).toBe(2);
  });
});
