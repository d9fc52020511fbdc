// The config validator generated at build time (scripts/config-validator.ts) validates as the schema
// compiled at load does, serves only the schema it was made from, and dist takes it.
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ErrorObject } from 'ajv';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigSchema } from '../agent/config-schema.js';
import {
  configAjv,
  schemaFingerprint,
  useGenerated,
  useGeneratedScript,
  validatorFor,
  type GeneratedValidator,
} from '../agent/config/validator.js';
import { configValidatorSource } from '../scripts/config-validator.js';
import { cleanup, tempDir } from './helpers/agent.js';

const dir = tempDir();
afterAll(() => cleanup(dir));

async function generatedValidator(): Promise<GeneratedValidator> {
  const file = join(dir, 'generated-validator.mjs');
  writeFileSync(file, configValidatorSource());
  return (await import(pathToFileURL(file).href)) as GeneratedValidator;
}

const sink = (extra: object) => ({ name: 'cloud', type: 'postgres', url: 'postgres://db.example/x', ...extra });

/** Configs with and without problems: defaults to fill, unknown keys, wrong types, a union by type, lengths in code points. */
const CONFIGS: object[] = [
  {},
  { broker: { mqtt: { port: 1884 } }, sinks: [sink({ columns: [{ field: '😀' }] })] },
  { broker: { mqtt: { port: 'x' } }, nonsense: true },
  { sinks: [sink({ table: 'x'.repeat(64) })] },
  { sinks: [sink({ table: '😀' })] },
  { sinks: [{ name: 'up', type: 'nosuchsink' }] },
  { log: { level: 'loud' }, buffer: { maxDelayMs: -1 } },
];

const described = (errors: ErrorObject[] | null | undefined) =>
  (errors ?? []).map((e) => ({ path: e.instancePath, schemaPath: e.schemaPath, keyword: e.keyword, params: e.params, message: e.message }));

describe('the generated config validator', () => {
  it('validates, fills defaults and reports errors as the compiled schema does', async () => {
    const generated = await generatedValidator();
    const compiled = configAjv().compile(ConfigSchema);
    let refused = 0;
    for (const config of CONFIGS) {
      const [a, b] = [structuredClone(config), structuredClone(config)];
      const ok = compiled(a);
      expect(generated.validate(b), JSON.stringify(config)).toBe(ok);
      expect(b).toEqual(a);
      expect(described(generated.validate.errors)).toEqual(described(compiled.errors));
      if (!ok) refused++;
    }
    // Both sides of the comparison were exercised: configs accepted (defaults filled) and refused.
    expect(refused).toBeGreaterThanOrEqual(4);
    const filled = structuredClone(CONFIGS[0]) as { broker?: { mqtt?: { port?: number } } };
    expect(generated.validate(filled)).toBe(true);
    expect(filled.broker?.mqtt?.port).toBe(1883);
  });

  it('serves only the schema it was generated from', async () => {
    const generated = await generatedValidator();
    expect(generated.fingerprint).toBe(schemaFingerprint(ConfigSchema));
    useGenerated(generated);
    expect(validatorFor(ConfigSchema)).toBe(generated.validate);
    const changed = { ...ConfigSchema, description: 'another schema' } as typeof ConfigSchema;
    expect(schemaFingerprint(changed)).not.toBe(generated.fingerprint);
    const other = validatorFor(changed);
    expect(other).not.toBe(generated.validate);
    expect(other({})).toBe(true);
  });

  it("as a script (the single executable's asset): evaluated at each load, taken for the schema it was made from only", () => {
    // Another schema than the one the dist's module (taken by the test above) was made from.
    const scripted = { ...ConfigSchema, description: 'the scripted one' } as typeof ConfigSchema;
    const other = { ...ConfigSchema, description: 'neither' } as typeof ConfigSchema;
    const source = configValidatorSource('script', scripted);
    let evaluated = 0;
    useGeneratedScript(() => (evaluated++, source));
    const compiled = configAjv().compile(ConfigSchema);
    for (const config of CONFIGS) {
      const [a, b] = [structuredClone(config), structuredClone(config)];
      const validate = validatorFor(scripted);
      const ok = compiled(a);
      expect(validate(b), JSON.stringify(config)).toBe(ok);
      expect(b).toEqual(a);
      expect(described(validate.errors)).toEqual(described(compiled.errors));
    }
    expect(evaluated).toBe(CONFIGS.length); // a new evaluation at each load, let go after it
    const first = validatorFor(scripted);
    expect(first).not.toBe(validatorFor(scripted));
    expect('schemaEnv' in first).toBe(false); // generated code: AJV gives what it compiles a schemaEnv
    // The control: a schema the script was not made from is compiled by AJV, after a look at the script.
    expect('schemaEnv' in validatorFor(other)).toBe(true);
    expect(evaluated).toBe(CONFIGS.length + 3);
  });

  it('is built into dist for the current schema, and dist takes it', async () => {
    const dist = (path: string) => pathToFileURL(resolve(import.meta.dirname, '../dist', path)).href;
    const built = (await import(dist('agent/config/generated-validator.js'))) as GeneratedValidator;
    expect(built.fingerprint, 'dist is older than the sources: npm run build').toBe(schemaFingerprint(ConfigSchema));
    const validator = (await import(dist('agent/config/validator.js'))) as typeof import('../agent/config/validator.js');
    const schema = (await import(dist('agent/config-schema.js'))) as typeof import('../agent/config-schema.js');
    expect(await validator.useGeneratedValidator()).toBe(true);
    expect(validator.validatorFor(schema.ConfigSchema)).toBe(built.validate);
  });
});
