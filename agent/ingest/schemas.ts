// Reading schemas: loaded from a directory (YAML or JSON) and from the config, compiled to AJV
// once per version, matched to topics; reloadable, keeping the previous version of a broken file.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { LineCounter, parseDocument } from 'yaml';
import { describeErrors } from '../config/errors.js';
import { topicMatches } from '../../mqtt-topic/topic.js';
import type { IngestConfig } from './config.js';
import { linearRegExp, patternProblem } from './linear-regexp.js';
import { SchemaDocSchema, type FieldSpec, type SchemaDoc } from './schema-doc.js';

export type SchemaMode = IngestConfig['mode'];

export interface CompiledSchema {
  /** `name@version`, recorded with every reading it accepts. */
  id: string;
  name: string;
  version: number;
  topics: string[];
  timestampField?: string;
  measurement: string;
  tags: string[];
  /** Field name -> unit, for sinks and people. */
  units: Record<string, string>;
  /** Fields that only count up (declared, or named so): charts leave them off by default. */
  counters: string[];
  /** Field name -> type, for sinks (InfluxDB integers, PostgreSQL columns). */
  fields: Record<string, FieldSpec['type']>;
  jsonSchema: object;
  validate: ValidateFunction;
  /** The document it was made from, as written. */
  doc: SchemaDoc;
}

/** A field named like a count: count, counter, packets_total... */
const COUNTER_NAME = /(^|_)(count|counter)$|_total$/i;

export class SchemaFileError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
  }
}

// Made when the first schema is loaded, not at start (about 60 ms of it, with no schema to load).
let checkDocument: ValidateFunction | undefined;
const checkDoc = () =>
  (checkDocument ??= new Ajv({ allErrors: true, useDefaults: true, strict: false, verbose: true }).compile(SchemaDocSchema));
let payloadCompiler: Ajv | undefined;
function payloadAjv(): Ajv {
  if (payloadCompiler) return payloadCompiler;
  payloadCompiler = new Ajv({ allErrors: true, strict: false, code: { regExp: linearRegExp } });
  (addFormats as unknown as (ajv: Ajv, formats: string[]) => void)(payloadCompiler, ['date-time']);
  return payloadCompiler;
}
const compiledCache = new Map<string, ValidateFunction>();

function fieldSchema(spec: FieldSpec): Record<string, unknown> {
  const s: Record<string, unknown> = {};
  switch (spec.type) {
    case 'float':
      s.type = 'number';
      break;
    case 'timestamp':
      s.type = ['string', 'number'];
      s.format = 'date-time'; // applies to strings; numbers are epoch seconds or milliseconds
      break;
    case 'array':
      s.type = 'array';
      if (spec.items) s.items = fieldSchema({ type: spec.items });
      break;
    default:
      s.type = spec.type;
  }
  const [lo, hi] =
    spec.type === 'string' ? ['minLength', 'maxLength'] : spec.type === 'array' ? ['minItems', 'maxItems'] : ['minimum', 'maximum'];
  if (spec.min !== undefined) s[lo] = spec.min;
  if (spec.max !== undefined) s[hi] = spec.max;
  if (spec.pattern !== undefined) s.pattern = spec.pattern;
  if (spec.enum !== undefined) s.enum = spec.enum;
  if (spec.description !== undefined) s.description = spec.description;
  return s;
}

/** Top-level property types of a plain JSON Schema, in the compact format's terms. */
function jsonSchemaFields(schema: Record<string, unknown>): Record<string, FieldSpec['type']> {
  const props = (schema.properties ?? {}) as Record<string, { type?: unknown; format?: string }>;
  const out: Record<string, FieldSpec['type']> = {};
  for (const [name, p] of Object.entries(props)) {
    const type = Array.isArray(p.type) ? p.type.find((t) => t !== 'null') : p.type;
    if (p.format === 'date-time') out[name] = 'timestamp';
    else if (type === 'number') out[name] = 'float';
    else if (['string', 'integer', 'boolean', 'array', 'object'].includes(type as string)) out[name] = type as FieldSpec['type'];
  }
  return out;
}

interface Problem {
  /** JSON pointer into the document (for its line). */
  pointer: string;
  /** Dotted path, e.g. fields.id.pattern. */
  path: string;
  message: string;
}

/** A pattern RE2 cannot run: refused when the schema is loaded or edited, naming where it is. */
class PatternError extends Error {
  constructor(readonly problems: Problem[]) {
    super(problems.map((p) => `${p.path}: ${p.message}`).join('; '));
  }
}

/** Every pattern of a (JSON) schema document that RE2 cannot run. */
function patternProblems(node: unknown, pointer = '', path = ''): Problem[] {
  if (typeof node !== 'object' || node === null) return [];
  const problems: Problem[] = [];
  const check = (pattern: string, p: string, dotted: string) => {
    const message = patternProblem(pattern);
    if (message) problems.push({ pointer: p, path: dotted, message });
  };
  for (const [key, value] of Object.entries(node)) {
    const [p, dotted] = [
      `${pointer}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`,
      Array.isArray(node) ? `${path}[${key}]` : path ? `${path}.${key}` : key,
    ];
    if (key === 'pattern' && typeof value === 'string') check(value, p, dotted);
    else if (key === 'patternProperties' && typeof value === 'object' && value !== null)
      for (const name of Object.keys(value)) check(name, p, `${dotted}[${JSON.stringify(name)}]`);
    problems.push(...patternProblems(value, p, dotted));
  }
  return problems;
}

/** Turn a checked schema document into a validator. */
function compileSchema(doc: SchemaDoc, defaultMode: SchemaMode): CompiledSchema {
  const mode = doc.mode ?? defaultMode;
  const fields = Object.entries(doc.fields ?? {}).map(([name, f]) => [name, typeof f === 'string' ? { type: f } : f] as const);
  let jsonSchema: Record<string, unknown>;
  if (doc.jsonSchema) {
    jsonSchema = { ...doc.jsonSchema };
    if (mode === 'strict' && jsonSchema.additionalProperties === undefined) jsonSchema.additionalProperties = false;
  } else {
    jsonSchema = {
      type: 'object',
      properties: Object.fromEntries(fields.map(([name, f]) => [name, fieldSchema(f)])),
      required: fields.filter(([, f]) => f.required).map(([name]) => name),
      additionalProperties: mode === 'lenient',
    };
  }
  // The document as written (jsonSchema, or fields with their patterns), so problems name its keys.
  const problems = patternProblems(doc.jsonSchema ? { jsonSchema: doc.jsonSchema } : { fields: doc.fields ?? {} });
  if (problems.length) throw new PatternError(problems);
  const key = createHash('sha256').update(JSON.stringify(jsonSchema)).digest('hex');
  let validate = compiledCache.get(key);
  if (!validate) {
    validate = payloadAjv().compile(jsonSchema);
    compiledCache.set(key, validate);
  }
  return {
    id: `${doc.name}@${doc.version}`,
    name: doc.name,
    version: doc.version,
    topics: doc.topics,
    timestampField: doc.timestamp,
    measurement: doc.measurement ?? doc.name,
    tags: [...fields.filter(([, f]) => f.tag).map(([n]) => n), ...(doc.tags ?? [])],
    units: Object.fromEntries(fields.filter(([, f]) => f.unit).map(([n, f]) => [n, f.unit as string])),
    counters: fields.filter(([n, f]) => f.counter ?? COUNTER_NAME.test(n)).map(([n]) => n),
    fields: doc.jsonSchema ? jsonSchemaFields(doc.jsonSchema) : Object.fromEntries(fields.map(([n, f]) => [n, f.type])),
    jsonSchema,
    validate,
    doc,
  };
}

/** Check one document; problems are `where: path: message`, `where` naming file and line if known. */
export function checkSchemaDoc(value: unknown, where: (pointer: string) => string, defaultMode: SchemaMode): CompiledSchema {
  const check = checkDoc();
  if (!check(value)) {
    throw new SchemaFileError(describeErrors(check.errors ?? []).map((p) => `${where(p.pointer)}: ${p.path}: ${p.message}`));
  }
  try {
    return compileSchema(value as SchemaDoc, defaultMode);
  } catch (err) {
    if (err instanceof PatternError) throw new SchemaFileError(err.problems.map((p) => `${where(p.pointer)}: ${p.path}: ${p.message}`));
    throw new SchemaFileError([`${where('')}: cannot compile: ${(err as Error).message}`]);
  }
}

/** Parse and check one schema file (YAML or JSON). */
export function loadSchemaFile(path: string, defaultMode: SchemaMode): CompiledSchema {
  const text = readFileSync(path, 'utf8');
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  if (doc.errors.length) {
    throw new SchemaFileError(doc.errors.map((e) => `${path}:${lineCounter.linePos(e.pos[0]).line}: ${e.message.split('\n')[0]}`));
  }
  const lineOf = (pointer: string) => {
    const segments = pointer.split('/').slice(1);
    for (let n = segments.length; n >= 0; n--) {
      const node = doc.getIn(segments.slice(0, n), true) as { range?: [number, number, number] } | undefined;
      if (node?.range) return lineCounter.linePos(node.range[0]).line;
    }
    return 1;
  };
  return checkSchemaDoc(doc.toJS(), (pointer) => `${path}:${lineOf(pointer)}`, defaultMode);
}

export interface SchemaSources {
  dir?: string;
  inline: unknown[];
  mode: SchemaMode;
}

/** Which schema applies to a topic: the most specific pattern wins (fewer wildcards, more levels). */
function specificity(pattern: string): number {
  const levels = pattern.split('/');
  return levels.filter((l) => l !== '+' && l !== '#').length * 1000 - (pattern.includes('#') ? 500 : 0) + levels.length;
}

export class SchemaRegistry {
  /** Source (file path or `config:ingest.schemas[i]`) -> its schema. */
  private bySource = new Map<string, CompiledSchema>();
  private patterns: { pattern: string; schema: CompiledSchema; rank: number }[] = [];
  private memo = new Map<string, CompiledSchema | null>();
  /** Every version loaded in this run: records in the log may name one a reload replaced. */
  private readonly versions = new Map<string, CompiledSchema>();

  constructor(private readonly sources: SchemaSources) {}

  /**
   * (Re)load every schema. A source that fails keeps its previous version (if any) and is reported.
   * Returns the problems; the caller decides whether they are fatal (at start-up they are).
   */
  load(): string[] {
    const problems: string[] = [];
    const next = new Map<string, CompiledSchema>();
    const take = (source: string, compile: () => CompiledSchema) => {
      try {
        next.set(source, compile());
      } catch (err) {
        problems.push(...(err instanceof SchemaFileError ? err.problems : [`${source}: ${(err as Error).message}`]));
        const previous = this.bySource.get(source);
        if (previous) next.set(source, previous);
      }
    };
    this.sources.inline.forEach((doc, i) => {
      const source = `config:ingest.schemas[${i}]`;
      take(source, () => checkSchemaDoc(doc, () => source, this.sources.mode));
    });
    if (this.sources.dir) {
      let files: string[] = [];
      try {
        files = readdirSync(this.sources.dir)
          .filter((f) => ['.yaml', '.yml', '.json'].includes(extname(f)))
          .sort();
      } catch (err) {
        problems.push(`${this.sources.dir}: cannot read schema directory: ${(err as NodeJS.ErrnoException).code}`);
      }
      for (const file of files) {
        const path = join(this.sources.dir, file);
        take(path, () => loadSchemaFile(path, this.sources.mode));
      }
    }
    const names = new Map<string, string>();
    for (const [source, schema] of next) {
      const other = names.get(schema.name);
      if (other) problems.push(`${source}: schema name ${schema.name} is also defined in ${other}`);
      names.set(schema.name, source);
    }
    this.bySource = next;
    for (const schema of next.values()) this.versions.set(schema.id, schema);
    this.patterns = [...next.values()]
      .flatMap((schema) => schema.topics.map((pattern) => ({ pattern, schema, rank: specificity(pattern) })))
      .sort((a, b) => b.rank - a.rank);
    this.memo.clear();
    return problems;
  }

  /** The schema for a topic, or undefined. Memoised: sensors publish to a handful of topics. */
  match(topic: string): CompiledSchema | undefined {
    let hit = this.memo.get(topic);
    if (hit === undefined) {
      hit = this.patterns.find((p) => topicMatches(p.pattern, topic))?.schema ?? null;
      if (this.memo.size > 10_000) this.memo.clear();
      this.memo.set(topic, hit);
    }
    return hit ?? undefined;
  }

  byId(id: string): CompiledSchema | undefined {
    return this.versions.get(id);
  }

  list(): CompiledSchema[] {
    return [...this.bySource.values()];
  }

  /** Where the current schema of this name comes from: a file path, or `config:...`. */
  sourceOf(name: string): string | undefined {
    for (const [source, schema] of this.bySource) if (schema.name === name) return source;
    return undefined;
  }

  /** New schemas from the config file (a reload); they take effect at the next load(). */
  setInline(docs: unknown[]): void {
    this.sources.inline = docs;
  }

  get dir(): string | undefined {
    return this.sources.dir;
  }

  get mode(): SchemaMode {
    return this.sources.mode;
  }
}

/** Why a payload fails a schema, one reason per problem; undefined when it passes. */
export function refusalReasons(schema: CompiledSchema, value: unknown): { path: string; message: string }[] | undefined {
  if (schema.validate(value)) return undefined;
  return (schema.validate.errors ?? []).map((e) => {
    const extra = e.keyword === 'additionalProperties' ? ` (${String(e.params.additionalProperty)})` : '';
    const path = e.keyword === 'required' ? `${e.instancePath}/${String(e.params.missingProperty)}` : e.instancePath;
    return { path: path || '/', message: `${e.message}${extra}` };
  });
}
