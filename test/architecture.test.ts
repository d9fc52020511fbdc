// The layout is the architecture: these checks read the sources' imports and hold its seams.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');
const FOLDERS = ['agent', 'embedded-broker', 'mqtt-topic', 'scripts'];

/**
 * The pipeline's floors, lowest first: a file imports only from its own floor or one below. Shared
 * helpers and the config loader at the bottom, then the stages in the order a reading takes, then
 * what watches and serves them, and at the top the composition root (agent/cli.ts, agent/runtime/).
 */
const FLOORS = [
  'agent/lib',
  'mqtt-topic',
  'agent/config',
  'embedded-broker',
  'agent/users',
  'agent/ingest',
  'agent/log',
  'agent/consume',
  'agent/retention',
  'agent/gpio',
  'agent/health',
  'agent/serve',
  'agent/control',
  'agent',
];

function floorOf(file: string): number {
  const floor = FLOORS.filter((f) => file.startsWith(`${f}/`)).sort((a, b) => b.length - a.length)[0];
  return floor === undefined ? -1 : FLOORS.indexOf(floor);
}

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return path === 'agent/serve/web/page' ? [] : sources(path); // the browser's code
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [path] : [];
  });
}

/** The project files a source imports: static, type-only (seams all the same) and dynamic import(). */
function importsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const specs = [...text.matchAll(/^(?:import|export)[^'";]*?from '(\.[^']+)'|\bimport\('(\.[^']+)'\)/gm)].map((m) => m[1] ?? m[2]);
  return specs.map((spec) => relative(ROOT, join(ROOT, dirname(file), spec)).replace(/\.js$/, '.ts')).filter((t) => !t.endsWith('.json'));
}

function importGraph(folders = FOLDERS): Map<string, string[]> {
  return new Map(folders.flatMap(sources).map((file) => [file, importsOf(file)]));
}

function cycles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (file: string) => {
    if (state.get(file) === 'done') return;
    if (state.get(file) === 'open') return void found.push(stack.slice(stack.indexOf(file)).concat(file));
    state.set(file, 'open');
    stack.push(file);
    for (const next of graph.get(file) ?? []) visit(next);
    stack.pop();
    state.set(file, 'done');
  };
  for (const file of graph.keys()) visit(file);
  return found;
}

describe('architecture', () => {
  const graph = importGraph();
  const importers = (predicate: (target: string) => boolean) =>
    [...graph].filter(([, targets]) => targets.some(predicate)).map(([file]) => file);

  it('reads the imports it checks (positive control: agent/runtime/ wires the stages; a dynamic import; scripts/)', () => {
    expect(graph.get('agent/serve/web/graphql.ts')).toEqual(expect.arrayContaining(['agent/serve/web/graphql-engine.ts']));
    expect(graph.get('scripts/bench/broker-only.ts')).toEqual(expect.arrayContaining(['agent/runtime/index.ts']));
    expect(floorOf('agent/consume/store/sqlite.ts')).toBeGreaterThan(floorOf('agent/log/durable-log.ts'));
    expect(floorOf('agent/runtime/index.ts')).toBe(FLOORS.length - 1);
    expect(graph.get('agent/runtime/index.ts')).toEqual(
      expect.arrayContaining(['embedded-broker/index.ts', 'agent/log/index.ts', 'agent/consume/sinks/index.ts']),
    );
    expect(
      cycles(
        new Map([
          ['a', ['b']],
          ['b', ['a']],
        ]),
      ),
    ).toEqual([['a', 'b', 'a']]);
  });

  it('has no import cycle', () => {
    expect(cycles(graph)).toEqual([]);
  });

  it('embedded-broker imports nothing from agent/', () => {
    expect(
      [...graph].filter(([file, targets]) => file.startsWith('embedded-broker/') && targets.some((t) => t.startsWith('agent/'))),
    ).toEqual([]);
  });

  it('every stage matches topics through the shared mqtt-topic module, not the broker', () => {
    const viaBroker = [...graph]
      .filter(([file]) => !file.startsWith('embedded-broker/') && !file.startsWith('mqtt-topic/'))
      .filter(([file]) => /topicMatches/.test(readFileSync(join(ROOT, file), 'utf8')) && !graph.get(file)!.includes('mqtt-topic/topic.ts'));
    expect(viaBroker).toEqual([]);
    expect(importers((t) => t === 'mqtt-topic/topic.ts').length).toBeGreaterThanOrEqual(5);
  });

  it("the config loader sits below the stages: it imports no schema; only the root assembles the stages' sections", () => {
    const ownHelpers = ['agent/config/errors.ts', 'agent/config/redact-url.ts', 'agent/config/validator.ts'];
    expect(graph.get('agent/config/load.ts')!.filter((t) => !ownHelpers.includes(t))).toEqual([]);
    expect(graph.get('agent/config/redact-url.ts')).toEqual([]);
    expect(graph.get('agent/config/validator.ts')!.filter((t) => !t.startsWith('agent/config/generated-validator'))).toEqual([]);
    expect(
      importers((t) => t === 'agent/config-schema.ts')
        .filter((f) => !f.startsWith('agent/runtime/'))
        .sort(),
    ).toEqual(['agent/cli.ts', 'scripts/bench/broker-only.ts', 'scripts/config-validator.ts', 'scripts/docs.ts']);
    expect(graph.get('agent/config-schema.ts')).toEqual(
      expect.arrayContaining(['agent/consume/store/config.ts', 'agent/serve/web/config.ts']),
    );
  });

  it('one consumer engine: the store, the rollups and the sinks all run on agent/consume/engine.ts', () => {
    expect(importers((t) => t === 'agent/consume/engine.ts')).toEqual(
      expect.arrayContaining(['agent/consume/chunk-delivery.ts', 'agent/consume/sinks/forwarder.ts', 'agent/consume/local.ts']),
    );
    // The local consumers run in one place: neither the store nor the rollups runs its own loop.
    expect(importers((t) => t === 'agent/consume/chunk-delivery.ts')).toEqual(['agent/consume/local.ts']);
  });

  it('floors: every file imports only from its own floor or one below it', () => {
    const upward = [...graph]
      .filter(([file]) => file.startsWith('agent/') || file.startsWith('embedded-broker/') || file.startsWith('mqtt-topic/'))
      .flatMap(([file, targets]) => targets.filter((t) => floorOf(t) > floorOf(file)).map((t) => `${file} -> ${t}`));
    expect(upward).toEqual([]);
    // The rule at work: the config loader importing a stage would be refused.
    expect(floorOf('agent/consume/store/config.ts')).toBeGreaterThan(floorOf('agent/config/load.ts'));
  });

  it("only the CLI, the one bench that needs it, and the tests' agent fixture import the runtime, through its index", () => {
    const withTests = importGraph([...FOLDERS, 'test']);
    const outside = [...withTests].filter(([file]) => !file.startsWith('agent/runtime/'));
    const reaching = outside.filter(([, targets]) => targets.some((t) => t.startsWith('agent/runtime/')));
    expect(reaching.map(([file]) => file).sort()).toEqual(['agent/cli.ts', 'scripts/bench/broker-only.ts', 'test/helpers/agent.ts']);
    expect(
      reaching.flatMap(([, targets]) => targets.filter((t) => t.startsWith('agent/runtime/') && t !== 'agent/runtime/index.ts')),
    ).toEqual([]);
  });

  it('no stage imports the web layer; storage imports nothing of health', () => {
    const top = ['agent/cli.ts', 'agent/config-schema.ts'];
    expect(
      importers((t) => t.startsWith('agent/serve/')).filter(
        (f) => !f.startsWith('agent/serve/') && !f.startsWith('agent/runtime/') && !top.includes(f) && !f.startsWith('scripts/'),
      ),
    ).toEqual([]);
    const storage = ['agent/log/', 'agent/consume/store/', 'agent/consume/rollups/', 'agent/consume/db/'];
    expect(
      [...graph].filter(([file, targets]) => storage.some((s) => file.startsWith(s)) && targets.some((t) => t.startsWith('agent/health/'))),
    ).toEqual([]);
    expect(importers((t) => t.startsWith('agent/serve/')).length).toBeGreaterThan(0); // control: the root wires the web layer
  });

  it('the log is reached through its public interface only (index.ts; format.ts and config.ts, which load no LevelDB)', () => {
    const inner = [...graph]
      .filter(([file]) => !file.startsWith('agent/log/') && !file.startsWith('scripts/'))
      .flatMap(([file, targets]) =>
        targets
          .filter((t) => t.startsWith('agent/log/') && !['agent/log/index.ts', 'agent/log/format.ts', 'agent/log/config.ts'].includes(t))
          .map((t) => `${file} -> ${t}`),
      );
    expect(inner).toEqual([]);
    expect(importers((t) => t === 'agent/log/format.ts')).toEqual(expect.arrayContaining(['agent/consume/store/sqlite-db.ts']));
  });
});
