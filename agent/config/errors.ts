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
  return collapseUnions(errors.filter((e) => e.keyword !== 'if')).map((e) => {
    const key =
      e.keyword === 'additionalProperties' ? e.params.additionalProperty : e.keyword === 'required' ? e.params.missingProperty : undefined;
    return { pointer: key === undefined ? e.instancePath : `${e.instancePath}/${key}`, ...describe(e) };
  });
}

/**
 * anyOf/oneOf report one error per branch plus their own. When the value's type picks out one
 * branch (an object where the union is "name or {type, ...}"), that branch's errors say more;
 * otherwise keep only the union's own summary.
 */
function collapseUnions(errors: ErrorObject[]): ErrorObject[] {
  const drop = new Set<ErrorObject>();
  for (const union of errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf')) {
    const prefix = `${union.schemaPath}/`;
    const branches = union.keyword === 'anyOf' ? ((union.schema as { type?: string }[]) ?? []) : [];
    const dataType = Array.isArray(union.data) ? 'array' : union.data === null ? 'null' : typeof union.data;
    const chosen = dataType === 'object' || dataType === 'array' ? branches.findIndex((b) => b.type === dataType) : -1;
    const inside = errors.filter((e) => e !== union && e.schemaPath.startsWith(prefix));
    const keep =
      chosen >= 0 && branches.filter((b) => b.type === dataType).length === 1
        ? inside.filter((e) => e.schemaPath.startsWith(`${prefix}${chosen}/`))
        : [];
    if (keep.length) drop.add(union);
    for (const e of inside) if (!keep.includes(e)) drop.add(e);
  }
  return errors.filter((e) => !drop.has(e));
}

function describe(e: ErrorObject): { path: string; message: string } {
  const base = e.instancePath
    .slice(1)
    .replace(/\/(\d+)(?=\/|$)/g, '[$1]')
    .replace(/\//g, '.');
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
    case 'discriminator':
      return e.params.error === 'tag'
        ? { path: at(e.params.tag), message: 'is required' }
        : {
            path: at(e.params.tag),
            message: `must be ${discriminatorValues((e.parentSchema as { oneOf: TSchema[] }).oneOf, e.params.tag)}`,
          };
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
  const options = (schema as { anyOf?: TSchema[] }).anyOf ?? [];
  return options
    .map((o) => {
      const option = o as { const?: unknown; type?: string; anyOf?: TSchema[] };
      if (option.const !== undefined) return JSON.stringify(option.const);
      if (option.anyOf) return describeAnyOf(o);
      return `${option.type === 'object' ? 'an' : 'a'} ${option.type}`;
    })
    .join(' or ');
}

function discriminatorValues(branches: TSchema[], tag: string): string {
  return branches
    .map((b) => JSON.stringify((b as { properties?: Record<string, { const?: unknown }> }).properties?.[tag]?.const))
    .join(' or ');
}
