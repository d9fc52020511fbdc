// The layout is the architecture: these checks read the sources' imports and hold its seams.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');
const FOLDERS = ['agent', 'embedded-broker', 'mqtt-topic'];

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sources(path);
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [path] : [];
  });
}

/** file -> the project files it imports (type-only imports too: they are seams all the same). */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of FOLDERS.flatMap(sources)) {
    const text = readFileSync(join(ROOT, file), 'utf8');
    const targets = [...text.matchAll(/^(?:import|export)[^'";]*?from '(\.[^']+)'/gm)].map((m) =>
      relative(ROOT, join(ROOT, dirname(file), m[1])).replace(/\.js$/, '.ts'),
    );
    graph.set(file, targets);
  }
  return graph;
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

  it('reads the imports it checks (positive control: runtime.ts wires the stages)', () => {
    expect(graph.get('agent/runtime.ts')).toEqual(
      expect.arrayContaining(['embedded-broker/index.ts', 'agent/log/durable-log.ts', 'agent/consume/sinks/index.ts']),
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

  it('the config loader sits below the stages: it imports no schema; stages import no root config', () => {
    expect(graph.get('agent/config/load.ts')!.filter((t) => !['agent/config/errors.ts', 'agent/config/redact-url.ts'].includes(t))).toEqual(
      [],
    );
    expect(graph.get('agent/config/redact-url.ts')).toEqual([]);
    expect(importers((t) => t === 'agent/config/schema.ts').sort()).toEqual(['agent/cli.ts', 'agent/config/docs.ts', 'agent/runtime.ts']);
  });

  it('one consumer engine: the store, the rollups and the sinks all run on agent/consume/engine.ts', () => {
    expect(importers((t) => t === 'agent/consume/engine.ts')).toEqual(
      expect.arrayContaining(['agent/consume/chunk-delivery.ts', 'agent/consume/sinks/forwarder.ts', 'agent/runtime.ts']),
    );
    // The local consumers' delivery is wired by the runtime only: neither stage runs its own loop.
    expect(importers((t) => t === 'agent/consume/chunk-delivery.ts')).toEqual(['agent/runtime.ts']);
  });
});
