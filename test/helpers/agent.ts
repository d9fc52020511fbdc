// Starts real agents for tests: in-process (startStages) or as a child process (the CLI), always on free ports.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { pathToFileURL } from 'node:url';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';
import { onTestFinished } from 'vitest';
import type { Stages, RuntimeOptions } from '../../agent/runtime/index.js';
import type { GeneratedValidator } from '../../agent/config/validator.js';
import { productionNode } from '../../scripts/production-node.js';

/** The one way tests reach the runtime (the architecture test holds it to this fixture). */
export type { Stages };

export const CLI = resolve(import.meta.dirname, '../../dist/bundle/edge-agent.cjs');

/** Folders tempDir() made in this test file: test/setup/temp-dirs.ts removes what is left when the file ends. */
const made: string[] = [];

export function tempDir(prefix = 'edge-agent-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/** Remove every folder tempDir() made (once the file's own afterAll hooks stopped what used them). */
export function removeTempDirs(): string[] {
  const left = made.splice(0);
  left.forEach(cleanup);
  return left;
}

type Json = Record<string, unknown>;

/** A config file with free ports and a private data dir, plus whatever the test adds. */
export function writeConfig(dir: string, extra: Json = {}): string {
  const base: Json = {
    agent: { id: 'test-agent', dataDir: join(dir, 'data') },
    log: { level: 'warn' },
    broker: { mqtt: { host: '127.0.0.1', port: 0 } },
    web: { http: { host: '127.0.0.1', port: 0 } },
    // Tests publish one QoS 1 reading after another and look at the store's files soon after: a
    // short commit window and no minute-long gather. The defaults trade latency for SD-card wear;
    // test/wear.test.ts runs them.
    buffer: { maxDelayMs: 2, syncIntervalMs: 20 },
    store: { maxGatherMs: 1000 },
    rollups: { maxGatherMs: 1000 },
  };
  const path = join(dir, 'config.yaml');
  writeFileSync(path, stringify(merge(base, extra)));
  return path;
}

function merge(a: Json, b: Json): Json {
  const out: Json = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] =
      cur && typeof cur === 'object' && !Array.isArray(cur) && v && typeof v === 'object' && !Array.isArray(v)
        ? merge(cur as Json, v as Json)
        : v;
  }
  return out;
}

export function portOf(hostPort: string): number {
  return Number(hostPort.slice(hostPort.lastIndexOf(':') + 1));
}

export interface InProcessAgent {
  runtime: Stages;
  dir: string;
  /** The agent's data directory (agent.dataDir). */
  dataDir: string;
  configPath: string;
  mqttUrl: string;
  port(name: string): number;
  stop(): Promise<void>;
}

let builtValidator: Promise<void> | undefined;

/**
 * The config validator `npm run build` generated (the pretest step builds), as the agent from dist
 * takes it: compiling the schema instead costs each start a third of a second. A validator made from
 * another schema (sources changed since the build) is not used.
 */
function useBuiltValidator(): Promise<void> {
  builtValidator ??= (async () => {
    const { useGenerated } = await import('../../agent/config/validator.js');
    const built = pathToFileURL(resolve(import.meta.dirname, '../../dist/agent/config/generated-validator.js')).href;
    useGenerated((await import(built)) as GeneratedValidator);
  })().catch(() => {});
  return builtValidator;
}

export async function startAgent(extra: Json = {}, dir = tempDir(), options: RuntimeOptions = {}): Promise<InProcessAgent> {
  const configPath = writeConfig(dir, extra);
  // Loaded here, not with this file: a test file that only spawns agents does not load the agent (a second or two).
  const [{ loadConfig }, { createLogger }, { startStages }] = await Promise.all([
    import('../../agent/config-schema.js'),
    import('../../agent/lib/logger.js'),
    import('../../agent/runtime/index.js'),
  ]);
  await useBuiltValidator();
  const { config } = loadConfig(configPath, {});
  const runtime = await startStages(config, createLogger('silent'), options);
  let stopped = false;
  const agent: InProcessAgent = {
    runtime,
    dir,
    dataDir: config.agent.dataDir,
    configPath,
    mqttUrl: `mqtt://127.0.0.1:${portOf(runtime.listeners.mqtt)}`,
    port: (name) => portOf(runtime.listeners[name]),
    async stop() {
      if (stopped) return;
      stopped = true;
      await runtime.close();
    },
  };
  whenTestEnds(() => agent.stop());
  return agent;
}

/**
 * Started inside a test, an agent stops when the test ends, passed or failed (one started in
 * beforeAll is its afterAll's to stop): a failed assertion never leaves one running.
 */
function whenTestEnds(stop: () => unknown): void {
  try {
    onTestFinished(async () => void (await stop()));
  } catch {
    /* not inside a test */
  }
}

export interface ChildAgent {
  proc: ChildProcess;
  listeners: Record<string, string>;
  lines: string[];
  exited: Promise<number | null>;
}

const children = new Set<ChildProcess>();
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL'))); // no agent outlives its test file

/** How the unit and `npm start` run the agent: a bounded V8 heap, malloc that gives memory back. */
export const PRODUCTION_NODE = productionNode();

/** Run the CLI as a child process and wait for its `ready` line. */
export async function spawnAgent(args: string[], env: NodeJS.ProcessEnv = {}, nodeArgs: string[] = []): Promise<ChildAgent> {
  const proc = spawn(process.execPath, [...nodeArgs, CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
  whenTestEnds(() => proc.exitCode === null && proc.signalCode === null && proc.kill('SIGKILL'));
  const lines: string[] = [];
  const exited = new Promise<number | null>((res) => proc.on('close', (code) => res(code))); // after stdio is drained
  proc.stderr!.on('data', (d) => lines.push(String(d)));
  const listeners = await new Promise<Record<string, string>>((res, rej) => {
    const rl = createInterface({ input: proc.stdout! });
    rl.on('line', (line) => {
      lines.push(line);
      try {
        const msg = JSON.parse(line);
        if (msg.msg === 'ready') res(msg.listeners);
      } catch {
        /* not JSON */
      }
    });
    exited.then((code) => rej(new Error(`agent exited with ${code} before ready:\n${lines.join('\n')}`)));
  });
  return { proc, listeners, lines, exited };
}

/** Write a file in a test's directory; returns its path. */
export function writeIn(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

export function cleanup(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
