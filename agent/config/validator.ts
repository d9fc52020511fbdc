// The config's validator. Compiling the whole config's schema with AJV takes about a third of a second
// of a start here (far more on a Pi) and 1.5 MB of heap, so `npm run build` and the single executable
// generate its code ahead of time (scripts/config-validator.ts); a schema without generated code (the
// tests, from the sources) is compiled when loaded.
import { createHash } from 'node:crypto';
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

/**
 * Take the validator `npm run build` generated, where there is one (dist and the single executable);
 * from the sources there is none, and configs are validated by compiling the schema.
 */
export async function useGeneratedValidator(): Promise<boolean> {
  try {
    useGenerated(await import('./generated-validator.js'));
    return true;
  } catch {
    return false;
  }
}

/** A validator for `schema`: the generated one if it was made from this schema, else compiled for this load and let go. */
export function validatorFor(schema: TSchema): ValidateFunction {
  return generated.get(schemaFingerprint(schema)) ?? configAjv().compile(schema);
}
