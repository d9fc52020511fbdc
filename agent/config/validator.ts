// The config's validator. Compiling the whole config's schema with AJV takes about a third of a second
// of a start here (far more on a Pi), so `npm run build` generates its code ahead of time
// (scripts/config-validator.ts): dist imports it; the single executable, whose memory at rest counts
// more (imported, that code holds about 3 MB for the life of the process), evaluates it for each load
// and lets it go. From the sources, the schema is compiled when loaded and let go.
import { createHash } from 'node:crypto';
import { compileFunction } from 'node:vm';
import { Ajv, type Options, type ValidateFunction } from 'ajv';
import type { TSchema } from '@sinclair/typebox';

const OPTIONS: Options = { allErrors: true, useDefaults: true, strict: true, strictRequired: false, verbose: true, discriminator: true };

/** The AJV instance a config schema is compiled by (`code` for the generated source). */
export function configAjv(code?: Options['code']): Ajv {
  const ajv = new Ajv({ ...OPTIONS, code });
  ajv.addKeyword({ keyword: 'secret', schemaType: 'boolean' });
  return ajv;
}

/** Names a schema and the options it is compiled with: generated code serves only the schema it was made from. */
export function schemaFingerprint(schema: TSchema): string {
  return createHash('sha256')
    .update(JSON.stringify({ schema, options: OPTIONS }))
    .digest('hex');
}

export interface GeneratedValidator {
  /** schemaFingerprint() of the schema the code was generated from. */
  fingerprint: string;
  validate: ValidateFunction;
}

const generated = new Map<string, ValidateFunction>();

/** Validate configs of the schema `module` was generated from with its code. */
export function useGenerated(module: GeneratedValidator): void {
  generated.set(module.fingerprint, module.validate);
}

/** Take the validator `npm run build` generated, where there is one (dist). */
export async function useGeneratedValidator(): Promise<boolean> {
  try {
    useGenerated(await import('./generated-validator.js'));
    return true;
  } catch {
    return false;
  }
}

let evaluate: (() => GeneratedValidator) | undefined;

/** Generated code as a script (`module.exports = { validate, fingerprint }`), evaluated at each load and let go. */
export function useGeneratedScript(source: () => string): void {
  evaluate = () => {
    const module = { exports: {} as GeneratedValidator };
    compileFunction(source(), ['module'], { filename: 'generated-validator.cjs' })(module);
    return module.exports;
  };
}

/** A validator for `schema`: the generated one if it was made from this schema, else compiled for this load and let go. */
export function validatorFor(schema: TSchema): ValidateFunction {
  const fingerprint = schemaFingerprint(schema);
  const imported = generated.get(fingerprint);
  if (imported) return imported;
  const script = evaluate?.();
  return script?.fingerprint === fingerprint ? script.validate : configAjv().compile(schema);
}
