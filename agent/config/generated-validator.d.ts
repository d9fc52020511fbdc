// Written by `npm run build` into dist (scripts/config-validator.ts); absent from the sources.
import type { ValidateFunction } from 'ajv';

/** schemaFingerprint() of the schema the code was generated from. */
export declare const fingerprint: string;
export declare const validate: ValidateFunction;
