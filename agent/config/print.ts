// `edge-agent config print`: the effective config in the schema's order (as the reference in the
// README lists it), with what the file or the environment set marked, the rest being defaults.
import { Document, isMap, isScalar, isSeq, type Node } from 'yaml';
import { schemaFor } from './load.js';
import type { TSchema } from '@sinclair/typebox';

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `config` with every object's keys in the order its schema lists them. */
function ordered(schema: TSchema, value: unknown): unknown {
  const s = schemaFor(schema, value) as { properties?: Record<string, TSchema>; items?: TSchema };
  if (Array.isArray(value)) return s.items ? value.map((v) => ordered(s.items!, v)) : value;
  if (!isObject(value) || !s.properties) return value;
  const out: Json = {};
  for (const [key, sub] of Object.entries(s.properties)) if (key in value) out[key] = ordered(sub, value[key]);
  for (const key of Object.keys(value)) if (!(key in out)) out[key] = value[key];
  return out;
}

/** The paths to every value the user gave (a list or a leaf as a whole). */
function givenPaths(given: unknown, path: (string | number)[] = []): (string | number)[][] {
  if (!isObject(given)) return path.length ? [path] : [];
  return Object.entries(given).flatMap(([k, v]) => givenPaths(v, [...path, k]));
}

export function printConfig(schema: TSchema, config: unknown, given: unknown): string {
  const doc = new Document(ordered(schema, config));
  for (const path of givenPaths(given)) {
    const node = doc.getIn(path, true) as Node | undefined;
    if (isScalar(node) || isSeq(node) || isMap(node)) node.comment = ' set';
  }
  doc.commentBefore =
    ' The effective configuration, in the reference\'s order: values marked "set" come from the\n file or the environment, the rest are defaults. Secrets are shown as ***.';
  return doc.toString({ lineWidth: 0 });
}
