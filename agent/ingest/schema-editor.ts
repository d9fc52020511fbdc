// Schemas changed at run time (the API): each change is checked first, written to the schema
// directory (so a restart keeps it), and swapped in by reloading the registry. Every change makes
// a new version; the versions it replaced are kept in `.history/` beside the files.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { extname, join, relative } from 'node:path';
import { stringify } from 'yaml';
import { checkSchemaDoc, SchemaFileError, type CompiledSchema, type SchemaRegistry } from './schemas.js';
import { SCHEMA_NAME, type SchemaDoc } from './schema-doc.js';

const validName = new RegExp(SCHEMA_NAME);

/** Every entry (REST, GraphQL, the CLI) comes through here: a name is a file name, never a path. */
function checkName(name: string): void {
  if (!validName.test(name))
    throw new SchemaChangeError(
      'invalid',
      `name: a schema name is letters, digits, _ . - (at most 128, not starting with . or -), not ${JSON.stringify(name.slice(0, 60))}`,
      ['name: not a schema name'],
    );
}

export class SchemaChangeError extends Error {
  constructor(
    readonly kind: 'invalid' | 'conflict' | 'missing',
    message: string,
    readonly problems: string[] = [],
  ) {
    super(message);
  }
}

/** A schema as the API shows it; `source` and `editable` only for the one in effect. */
export interface SchemaView {
  name: string;
  version: number;
  id: string;
  topics: string[];
  source: string;
  editable: boolean;
  doc: SchemaDoc;
}

export interface SchemaVersion {
  version: number;
  current: boolean;
}

export class SchemaEditor {
  private readonly dir: string;

  constructor(private readonly registry: SchemaRegistry) {
    if (!registry.dir) throw new Error('schemas can be changed only with a schema directory');
    this.dir = registry.dir;
  }

  private get history(): string {
    return join(this.dir, '.history');
  }

  list(): CompiledSchema[] {
    return this.registry.list();
  }

  current(name: string): CompiledSchema | undefined {
    return this.registry.list().find((s) => s.name === name);
  }

  sourceOf(name: string): string | undefined {
    return this.registry.sourceOf(name);
  }

  /** As the API shows it: the file by its name in the schema folder, not the machine's paths. */
  summary(s: CompiledSchema): SchemaView {
    const source = this.sourceOf(s.name) ?? '';
    const inConfig = source.startsWith('config:');
    return {
      name: s.name,
      version: s.version,
      id: s.id,
      topics: s.topics,
      source: inConfig ? 'config file' : relative(this.dir, source),
      editable: !inConfig,
      doc: s.doc,
    };
  }

  /** A version of a schema (the one in effect when not given), or undefined. */
  view(name: string, version?: number): SchemaView | undefined {
    checkName(name);
    const doc = this.doc(name, version);
    if (!doc) return undefined;
    const now = this.current(name);
    return now && now.version === doc.version
      ? this.summary(now)
      : { name, version: doc.version, id: `${name}@${doc.version}`, topics: doc.topics, source: '', editable: false, doc };
  }

  /** The versions this directory knows of a schema, newest first. */
  versions(name: string): SchemaVersion[] {
    checkName(name);
    const now = this.current(name)?.version;
    const old = existsSync(this.history)
      ? readdirSync(this.history)
          .map((f) => new RegExp(`^${name.replace(/[.]/g, '\\.')}@(\\d+)\\.json$`).exec(f))
          .filter((m): m is RegExpExecArray => m !== null)
          .map((m) => Number(m[1]))
      : [];
    const all = [...new Set([...old, ...(now === undefined ? [] : [now])])].sort((a, b) => b - a);
    return all.map((version) => ({ version, current: version === now }));
  }

  /** A version's document: the current one, or one kept in the history. */
  doc(name: string, version?: number): SchemaDoc | undefined {
    checkName(name);
    const now = this.current(name);
    if (now && (version === undefined || version === now.version)) return now.doc;
    const path = join(this.history, `${name}@${version}.json`);
    return version !== undefined && existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as SchemaDoc) : undefined;
  }

  create(doc: SchemaDoc): CompiledSchema {
    checkName(doc.name);
    if (this.current(doc.name))
      throw new SchemaChangeError('conflict', `a schema named ${doc.name} exists: PUT /api/schemas/${doc.name} to change it`);
    const version = Math.max(doc.version ?? 1, (this.versions(doc.name)[0]?.version ?? 0) + 1);
    return this.write(join(this.dir, `${doc.name}.json`), { ...doc, version });
  }

  /** A new version: the one given if it is newer, else the next. */
  replace(name: string, doc: SchemaDoc): CompiledSchema {
    checkName(name);
    const now = this.current(name);
    if (!now) throw new SchemaChangeError('missing', `no schema named ${name}`);
    if (doc.name !== name)
      throw new SchemaChangeError('invalid', `the body names schema ${doc.name}, the path ${name}`, [`body.name: must be ${name}`]);
    const path = this.ownFile(name);
    const version = doc.version !== undefined && doc.version > now.version ? doc.version : now.version + 1;
    this.keep(now);
    return this.write(path, { ...doc, version });
  }

  remove(name: string): void {
    checkName(name);
    const now = this.current(name);
    if (!now) throw new SchemaChangeError('missing', `no schema named ${name}`);
    const path = this.ownFile(name);
    this.keep(now);
    renameSync(path, join(this.history, `${name}@${now.version}.removed${extname(path)}`));
    this.reload(path);
  }

  /** The file a schema comes from; one from the config file cannot be changed here. */
  private ownFile(name: string): string {
    const source = this.sourceOf(name)!;
    if (source.startsWith('config:'))
      throw new SchemaChangeError('conflict', `schema ${name} is defined in the config file (${source.slice(7)}): change it there`);
    return source;
  }

  private keep(schema: CompiledSchema): void {
    mkdirSync(this.history, { recursive: true, mode: 0o700 });
    writeFileSync(join(this.history, `${schema.name}@${schema.version}.json`), JSON.stringify(schema.doc, null, 2) + '\n');
  }

  /** Check, then write (atomically, in the file's own format), then swap in. */
  /** The document compiled as it would be in effect, or SchemaChangeError naming what is wrong; nothing is written. */
  compile(doc: SchemaDoc): CompiledSchema {
    checkName(doc.name);
    try {
      return checkSchemaDoc(structuredClone(doc), () => 'body', this.registry.mode);
    } catch (err) {
      if (err instanceof SchemaFileError)
        throw new SchemaChangeError('invalid', `the schema is not valid: ${err.problems.join('; ')}`, err.problems);
      throw err;
    }
  }

  private write(path: string, doc: SchemaDoc): CompiledSchema {
    this.compile(doc);
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const yaml = ['.yaml', '.yml'].includes(extname(path));
    writeFileSync(`${path}.tmp`, yaml ? stringify(doc) : JSON.stringify(doc, null, 2) + '\n');
    renameSync(`${path}.tmp`, path);
    this.reload(path);
    return this.current(doc.name)!;
  }

  private reload(path: string): void {
    const problems = this.registry.load().filter((p) => p.startsWith(path));
    if (problems.length) throw new SchemaChangeError('invalid', problems.join('; '), problems);
  }
}
