import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadSchemaFile, SchemaFileError, SchemaRegistry } from '../../agent/ingest/schemas.js';
import { cleanup, portOf, spawnAgent, tempDir, writeConfig, writeIn } from '../helpers/agent.js';
import { connect } from '../helpers/mqtt.js';
import { until } from '../helpers/servers.js';
import { openStoreFile } from '../helpers/store-file.js';

const dir = tempDir();
afterAll(() => cleanup(dir));

const file = (name: string, text: string) => writeIn(dir, name, text);

function problemsOf(path: string): string[] {
  try {
    loadSchemaFile(path, 'lenient');
  } catch (err) {
    if (err instanceof SchemaFileError) return err.problems;
    throw err;
  }
  return [];
}

describe('schema files', () => {
  it('reports a YAML syntax error by file and line', () => {
    const path = file('broken.yaml', 'name: env\ntopics: [a/b\nfields:\n  t: float\n');
    expect(problemsOf(path)[0]).toMatch(new RegExp(`^${path}:\\d+: `));
  });

  it('reports schema mistakes by file, line and key', () => {
    const path = file(
      'wrong.yaml',
      ['name: env', 'topics: [sensors/#]', 'fields:', '  temperature: { type: flaot }', '  humidity: { type: float, maximum: 100 }'].join(
        '\n',
      ),
    );
    expect(problemsOf(path)).toEqual([
      `${path}:4: fields.temperature.type: must be "string" or "integer" or "float" or "boolean" or "array" or "object" or "timestamp"`,
      `${path}:5: fields.humidity.maximum: unknown key`,
    ]);
  });

  it('patterns run in linear time: ^(a+)+$ against 100,000 a and a !, which would backtrack for ever in V8', () => {
    const schema = loadSchemaFile(
      file('nested.yaml', "name: nested\ntopics: [n/#]\nfields:\n  code: { type: string, pattern: '^(a+)+$' }\n"),
      'lenient',
    );
    expect(schema.validate({ code: `${'a'.repeat(100_000)}!` })).toBe(false);
    expect(schema.validate({ code: 'a'.repeat(100_000) })).toBe(true); // the control: the pattern does match
    expect(schema.validate({ code: 'Ab' })).toBe(false);
    // Unicode, as JSON Schema's patterns are: a property class, and a character outside the BMP.
    const unicode = loadSchemaFile(
      file(
        'unicode.json',
        JSON.stringify({
          name: 'u',
          topics: ['u/#'],
          jsonSchema: { type: 'object', properties: { s: { type: 'string', pattern: '^\\p{L}+😀$' } } },
        }),
      ),
      'lenient',
    );
    expect(unicode.validate({ s: 'héllo😀' })).toBe(true);
    expect(unicode.validate({ s: 'h3llo😀' })).toBe(false);
  });

  it('refuses a pattern RE2 cannot run (a backreference, a lookaround), naming file, line and key', () => {
    const compact = file(
      'backref.yaml',
      [
        'name: br',
        'topics: [b/#]',
        'fields:',
        '  ok: { type: string, pattern: "^[a-z]+$" }',
        '  twice: { type: string, pattern: "^(a)\\\\1$" }',
      ].join('\n'),
    );
    expect(problemsOf(compact)).toEqual([
      expect.stringMatching(
        new RegExp(
          `^${compact}:5: fields\\.twice\\.pattern: .*\\(patterns run on RE2, in linear time: no backreferences or lookarounds\\)$`,
        ),
      ),
    ]);
    const plain = file(
      'lookahead.json',
      JSON.stringify({
        name: 'la',
        topics: ['l/#'],
        jsonSchema: { type: 'object', properties: { n: { type: 'object', patternProperties: { '^(?=x)': { type: 'number' } } } } },
      }),
    );
    expect(problemsOf(plain)).toEqual([
      expect.stringMatching(/: jsonSchema\.properties\.n\.patternProperties\["\^\(\?=x\)"\]: .*lookarounds\)$/),
    ]);
  });

  it('accepts plain JSON Schema (in JSON files) and the compact format, strict or lenient', () => {
    const plain = loadSchemaFile(
      file(
        'plain.json',
        JSON.stringify({
          name: 'plain',
          version: 4,
          topics: ['p/#'],
          mode: 'strict',
          jsonSchema: { type: 'object', properties: { v: { type: 'number' } }, required: ['v'] },
        }),
      ),
      'lenient',
    );
    expect(plain.id).toBe('plain@4');
    expect(plain.validate({ v: 1 })).toBe(true);
    expect(plain.validate({ v: 1, w: 2 })).toBe(false); // strict: additionalProperties false added
    const compact = loadSchemaFile(
      file('compact.yaml', 'name: c\ntopics: [c/#]\nfields:\n  v: float\n  s: { type: string, tag: true, unit: none }\n'),
      'lenient',
    );
    expect(compact.validate({ v: 1.5, extra: true })).toBe(true);
    expect(compact.validate({ v: 'x' })).toBe(false);
    expect(compact.tags).toEqual(['s']);
    expect(compact.version).toBe(1);
  });

  it('picks the most specific pattern for a topic', () => {
    const registry = new SchemaRegistry({
      inline: [
        { name: 'any', topics: ['sensors/#'], fields: { v: 'float' } },
        { name: 'env', topics: ['sensors/+/env'], fields: { t: 'float' } },
        { name: 'one', topics: ['sensors/pi-1/env'], fields: { t: 'float' } },
      ],
      mode: 'lenient',
    });
    expect(registry.load()).toEqual([]);
    expect(registry.match('sensors/pi-1/env')?.name).toBe('one');
    expect(registry.match('sensors/pi-2/env')?.name).toBe('env');
    expect(registry.match('sensors/pi-2/power')?.name).toBe('any');
    expect(registry.match('other')).toBeUndefined();
  });
});

describe('schema reload on SIGHUP (agent as a child process)', () => {
  const schemaDir = join(dir, 'schemas');
  const v1 = 'name: env\nversion: 1\ntopics: ["sensors/+/env"]\nfields:\n  temperature: { type: float, required: true }\n';
  const v2 =
    'name: env\nversion: 2\ntopics: ["sensors/+/env"]\nfields:\n  temperature: { type: float, required: true }\n  humidity: { type: float, required: true }\n';

  it('refuses to start on a broken schema, naming the file and line', async () => {
    const bad = join(dir, 'bad-schemas');
    (await import('node:fs')).mkdirSync(bad);
    writeFileSync(join(bad, 'env.yaml'), 'name: env\ntopics: ["x"]\nfields:\n  t: { type: nope }\n');
    await expect(spawnAgent(['--config', writeConfig(dir, { ingest: { schemaDir: bad } })])).rejects.toThrow(
      /exited with 1[\s\S]*env\.yaml:4: fields\.t\.type/,
    );
  });

  it('applies a new version without a restart, and keeps it when the next edit is broken', async () => {
    (await import('node:fs')).mkdirSync(schemaDir);
    writeFileSync(join(schemaDir, 'env.yaml'), v1);
    const agent = await spawnAgent(['--config', writeConfig(dir, { ingest: { schemaDir } })], { EDGE_AGENT_LOG__LEVEL: 'info' });
    const url = `mqtt://127.0.0.1:${portOf(agent.listeners.mqtt)}`;
    const client = await connect(url);
    const publish = (body: object) => client.publishAsync('sensors/pi/env', JSON.stringify(body), { qos: 1 });
    const hup = async (expectLine: RegExp) => {
      const seen = agent.lines.length;
      agent.proc.kill('SIGHUP');
      await until(() => agent.lines.slice(seen).some((l) => expectLine.test(l)), 5000, `a log line ${expectLine}`).catch(() => {});
      return agent.lines.slice(seen).join('\n');
    };

    await publish({ n: 1, temperature: 20 }); // v1: accepted
    writeFileSync(join(schemaDir, 'env.yaml'), v2);
    expect(await hup(/schemas reloaded/)).toContain('env@2');
    await publish({ n: 2, temperature: 21 }); // v2 needs humidity: dead letter
    await publish({ n: 3, temperature: 22, humidity: 40 }); // v2: accepted

    writeFileSync(
      join(schemaDir, 'env.yaml'),
      'name: env\nversion: 3\ntopics: ["sensors/+/env"]\nfields:\n  temperature: { type: flaot }\n',
    );
    const out = await hup(/schemas reloaded/);
    expect(out).toMatch(/env\.yaml:5: fields\.temperature\.type/);
    await publish({ n: 4, temperature: 23 }); // still v2: dead letter
    await publish({ n: 5, temperature: 24, humidity: 41 }); // still v2: accepted

    // The store gathers its batches for up to store.gatherMs: poll until the three readings are in.
    const readRows = () => {
      const db = openStoreFile(join(dir, 'data', 'store.db'));
      try {
        return db
          .prepare("SELECT schema, json_extract(payload, '$.n') AS n FROM readings WHERE topic = 'sensors/pi/env' ORDER BY seq")
          .all();
      } finally {
        db.close();
      }
    };
    let rows = readRows();
    for (const deadline = Date.now() + 10_000; rows.length < 3 && Date.now() < deadline; rows = readRows())
      await new Promise((r) => setTimeout(r, 100));
    expect(rows).toEqual([
      { schema: 'env@1', n: 1 },
      { schema: 'env@2', n: 3 },
      { schema: 'env@2', n: 5 },
    ]);
    await client.endAsync();
    agent.proc.kill('SIGTERM');
    expect(await agent.exited).toBe(0);
  });
});
