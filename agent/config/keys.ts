// Building blocks of config schemas, shared by the main schema and the sinks' own schemas.
import { Type, type TOptional, type TString } from '@sinclair/typebox';

/** A secret value plus its `<name>File` twin; the loader reads the file and drops the twin. */
export function secret<N extends string>(name: N, description: string) {
  type Secret = { [K in N | `${N}File`]: TOptional<TString> };
  return {
    [name]: Type.Optional(Type.String({ secret: true, description })),
    [`${name}File`]: Type.Optional(Type.String({ description: `file whose contents are ${name}` })),
  } as Secret;
}

/** One of a few strings. */
export const literals = <const T extends string>(values: readonly T[], options: { description: string; default?: T }) =>
  Type.Union(
    values.map((v) => Type.Literal(v)),
    options,
  );

/** One of a few strings, with a default. */
export const choice = <const T extends string>(values: readonly T[], def: NoInfer<T>, description: string) =>
  literals(values, { default: def, description });

/** Objects of the config take no keys they do not name. */
export const strict = { additionalProperties: false } as const;

export const MiB = 1024 * 1024;

/** 90s, 15m, 12h, 30d. */
export const Duration = (description: string, def?: string) =>
  Type.String({ pattern: '^[1-9][0-9]*(s|m|h|d)$', description, ...(def ? { default: def } : {}) });

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

export function durationMs(d: string): number {
  return Number(d.slice(0, -1)) * UNIT_MS[d.at(-1) as keyof typeof UNIT_MS];
}

/** A server's certificate and key (and the key's passphrase). */
export const serverTls = {
  cert: Type.Optional(Type.String({ minLength: 1, description: 'PEM certificate chain file' })),
  key: Type.Optional(Type.String({ minLength: 1, description: 'PEM private key file' })),
  ...secret('passphrase', 'passphrase of the private key'),
};
