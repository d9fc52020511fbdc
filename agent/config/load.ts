import { existsSync, readFileSync } from 'node:fs';
import { describeErrors } from './errors.js';
import { redactUrl } from './redact-url.js';
import { validatorFor } from './validator.js';
import { LineCounter, parseDocument } from 'yaml';
import type { TSchema } from '@sinclair/typebox';

export const ENV_PREFIX = 'EDGE_AGENT_';
/** Variables under the prefix that are not config keys. */
const RESERVED_ENV = new Set(['EDGE_AGENT_CONFIG']);
export const DEFAULT_CONFIG_PATHS = ['/etc/edge-agent/config.yaml', './edge-agent.yaml'];

export class ConfigError extends Error {
  constructor(
    readonly problems: string[],
    readonly source: string,
  ) {
    super(`invalid config (${source}):\n${problems.map((p) => `  ${p}`).join('\n')}`);
  }
}

type Json = Record<string, unknown>;

/** Where the config comes from: --config, $EDGE_AGENT_CONFIG, the default paths, else built-in defaults. */
export function resolveConfigPath(explicit?: string, env = process.env): string | undefined {
  if (explicit) return explicit;
  if (env.EDGE_AGENT_CONFIG) return env.EDGE_AGENT_CONFIG;
  return DEFAULT_CONFIG_PATHS.find((p) => existsSync(p));
}

export interface LoadedConfig<T> {
  config: T;
  path: string | undefined;
  /** What the file and the environment set, before defaults (config print marks it). */
  given: Json;
}

/**
 * A config following `schema`: read from YAML, environment variables applied, secret files read,
 * defaults filled in and validated; `check` adds what the schema cannot say. Every problem is named.
 */
export function loadWith<T>(
  schema: TSchema,
  explicitPath: string | undefined,
  env: NodeJS.ProcessEnv,
  check: (config: T) => string[] = () => [],
): LoadedConfig<T> {
  const path = resolveConfigPath(explicitPath, env);
  const source = path ?? 'built-in defaults';
  const problems: string[] = [];
  const raw = path ? readYaml(path, problems) : {};
  if (problems.length) throw new ConfigError(problems, source);
  applyEnv(schema, raw, env, problems);
  readSecretFiles(schema, raw, '', problems);
  const given = structuredClone(raw);
  const validate = validatorFor(schema);
  if (!validate(raw)) problems.push(...describeErrors(validate.errors ?? []).map((p) => `${p.path}: ${p.message}`));
  else problems.push(...check(raw as T));
  if (problems.length) throw new ConfigError([...new Set(problems)], source);
  return { config: raw as T, path, given };
}

/** The schema a value follows: for a union keyed by `type` (the sinks), the branch its type names. */
export function schemaFor(schema: TSchema, node: unknown): TSchema {
  const s = schema as { oneOf?: TSchema[]; discriminator?: { propertyName: string } };
  if (!s.oneOf || !s.discriminator || typeof node !== 'object' || node === null) return schema;
  const tag = (node as Json)[s.discriminator.propertyName];
  return (
    s.oneOf.find(
      (b) => (b as { properties?: Record<string, { const?: unknown }> }).properties?.[s.discriminator!.propertyName]?.const === tag,
    ) ?? schema
  );
}

function readYaml(path: string, problems: string[]): Json {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    problems.push(`${path}: cannot read: ${(err as Error).message}`);
    return {};
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  for (const e of doc.errors) {
    const { line, col } = lineCounter.linePos(e.pos[0]);
    problems.push(`${path}:${line}:${col}: ${e.message.split('\n')[0]}`);
  }
  if (doc.errors.length) return {};
  const value = doc.toJS() ?? {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    problems.push(`${path}: the top level must be a mapping of keys`);
    return {};
  }
  return value as Json;
}

/** EDGE_AGENT_BROKER__MQTT__PORT -> broker.mqtt.port: path segments in UPPER_SNAKE_CASE joined by `__`. */
export function envNameFor(path: string[]): string {
  return ENV_PREFIX + path.map((k) => k.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('__');
}

function applyEnv(schema: TSchema, raw: Json, env: NodeJS.ProcessEnv, problems: string[]): void {
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || RESERVED_ENV.has(name) || value === undefined) continue;
    const found = findEnvKey(schema, raw, name.slice(ENV_PREFIX.length).split('__'), []);
    if (!found) {
      problems.push(`${name}: no config key has this name`);
      continue;
    }
    const coerced = coerce(found.schema, value);
    if (coerced instanceof Error) problems.push(`${name}: ${coerced.message}`);
    else setPath(raw, found.path, coerced);
  }
}

/** Keys by name; items of a list of named things (sinks) by their name: EDGE_AGENT_SINKS__CLOUD__PASSWORD. */
function findEnvKey(
  schema: TSchema,
  node: unknown,
  segments: string[],
  path: (string | number)[],
): { path: (string | number)[]; schema: TSchema } | undefined {
  if (segments.length === 0) return { path, schema };
  const s = schema as { properties?: Record<string, TSchema>; items?: TSchema };
  if (s.items && Array.isArray(node)) {
    const i = node.findIndex(
      (item) => typeof item?.name === 'string' && envNameFor([item.name.replace(/[.-]/g, '_')]) === ENV_PREFIX + segments[0],
    );
    return i < 0 ? undefined : findEnvKey(schemaFor(s.items, node[i]), node[i], segments.slice(1), [...path, i]);
  }
  for (const [key, sub] of Object.entries(s.properties ?? {})) {
    if (envNameFor([key]) === ENV_PREFIX + segments[0])
      return findEnvKey(sub, (node as Json | undefined)?.[key], segments.slice(1), [...path, key]);
  }
  return undefined;
}

/**
 * Turn an environment string into the type the schema wants; a bad scalar is left for the validator
 * to name, a list or mapping that is not whole YAML is an Error (nothing is filled in for it).
 */
function coerce(schema: TSchema, value: string): unknown {
  const types = schemaTypes(schema);
  if (types.has('boolean') && (value === 'true' || value === 'false')) return value === 'true';
  if ((types.has('integer') || types.has('number')) && value.trim() !== '' && !Number.isNaN(Number(value))) return Number(value);
  if (types.has('array') || types.has('object')) {
    const doc = parseDocument(value, { prettyErrors: false });
    if (doc.errors.length) return new Error(`not valid YAML or JSON: ${doc.errors[0].message.split('\n')[0]}`);
    return doc.toJS();
  }
  return value;
}

function schemaTypes(schema: TSchema): Set<string> {
  const s = schema as { type?: string; const?: unknown; anyOf?: TSchema[] };
  if (s.anyOf) return new Set(s.anyOf.flatMap((x) => [...schemaTypes(x)]));
  if (s.type) return new Set([s.type]);
  return new Set();
}

function setPath(obj: Json, path: (string | number)[], value: unknown): void {
  let node = obj;
  for (const key of path.slice(0, -1)) {
    if (typeof node[key] !== 'object' || node[key] === null) node[key] = {};
    node = node[key] as Json;
  }
  node[path[path.length - 1]] = value;
}

/** `passphraseFile: /run/secrets/x` becomes `passphrase: <file contents>`. */
function readSecretFiles(schema: TSchema, node: unknown, at: string, problems: string[]): void {
  if (typeof node !== 'object' || node === null) return;
  const s = schemaFor(schema, node) as { properties?: Record<string, TSchema & { secret?: boolean }>; items?: TSchema };
  if (Array.isArray(node)) {
    if (s.items) node.forEach((item, i) => readSecretFiles(s.items as TSchema, item, `${at}[${i}]`, problems));
    return;
  }
  if (!s.properties) return;
  const obj = node as Json;
  for (const [key, sub] of Object.entries(s.properties)) {
    const keyPath = at ? `${at}.${key}` : key;
    const fileKey = `${key}File`;
    if (sub.secret && typeof obj[fileKey] === 'string') {
      try {
        obj[key] = readFileSync(obj[fileKey] as string, 'utf8').replace(/\r?\n$/, '');
        delete obj[fileKey];
      } catch (err) {
        problems.push(`${keyPath}File: cannot read ${obj[fileKey]}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    } else if (key in obj) {
      readSecretFiles(sub, obj[key], keyPath, problems);
    }
  }
}

/** A config with every secret its schema marks replaced by "***", and the credentials inside URLs. */
export function redactWith(schema: TSchema, config: unknown): Json {
  const copy = structuredClone(config) as Json;
  redactNode(schema, copy);
  return copy;
}

function redactNode(schema: TSchema, node: unknown): void {
  if (typeof node !== 'object' || node === null) return;
  const s = schemaFor(schema, node) as { properties?: Record<string, TSchema & { secret?: boolean }>; items?: TSchema };
  if (Array.isArray(node)) {
    if (s.items) node.forEach((n, i) => (typeof n === 'string' ? (node[i] = redactUrl(n)) : redactNode(s.items as TSchema, n)));
    return;
  }
  const obj = node as Json;
  for (const [key, sub] of Object.entries(s.properties ?? {})) {
    if (!(key in obj)) continue;
    if (sub.secret) obj[key] = '***';
    else if (typeof obj[key] === 'string') obj[key] = redactUrl(obj[key]);
    else redactNode(sub, obj[key]);
  }
}
