// AJV errors as `path: what is wrong` lines a person can act on.
import type { TSchema } from '@sinclair/typebox';
import type { ErrorObject } from 'ajv';

export interface Problem {
  /** JSON pointer to the offending value (for finding its line). */
  pointer: string;
  /** Dotted path, e.g. broker.acl[0].user. */
  path: string;
  message: string;
}

export function describeErrors(errors: ErrorObject[]): Problem[] {
  return collapseUnions(errors).map((e) => {
    const key = e.keyword === 'additionalProperties' ? e.params.additionalProperty : e.keyword === 'required' ? e.params.missingProperty : undefined;
    return { pointer: key === undefined ? e.instancePath : `${e.instancePath}/${key}`, ...describe(e) };
  });
}

/** anyOf/oneOf report one error per branch plus their own; keep only their own. */
function collapseUnions(errors: ErrorObject[]): ErrorObject[] {
  const unions = errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf').map((e) => `${e.schemaPath}/`);
  return errors.filter((e) => !unions.some((u) => e.schemaPath.startsWith(u)));
}

function describe(e: ErrorObject): { path: string; message: string } {
  const base = e.instancePath.slice(1).replace(/\/(\d+)(?=\/|$)/g, '[$1]').replace(/\//g, '.');
  const at = (key: string) => (base ? `${base}.${key}` : key);
  switch (e.keyword) {
    case 'additionalProperties':
      return { path: at(e.params.additionalProperty), message: 'unknown key' };
    case 'required':
      return { path: at(e.params.missingProperty), message: 'is required' };
    case 'oneOf': {
      const options = (e.schema as { required: string[] }[]).map((o) => o.required.join('+'));
      return { path: base || '(root)', message: `must set exactly one of ${options.join(', ')}` };
    }
    case 'const':
      return { path: base, message: `must be ${JSON.stringify(e.params.allowedValue)}` };
    case 'enum':
      return { path: base, message: `must be ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(' or ')}` };
    case 'anyOf':
      return { path: base, message: `must be ${describeAnyOf(e.parentSchema as TSchema)}` };
    default:
      return { path: base || '(root)', message: e.message ?? 'is invalid' };
  }
}

function describeAnyOf(schema: TSchema): string {
  const options = (schema as { anyOf?: { const?: unknown; type?: string }[] }).anyOf ?? [];
  return options.map((o) => (o.const !== undefined ? JSON.stringify(o.const) : `a ${o.type}`)).join(' or ');
}
