// The agent as benchmarks run it: a child process with login and ACL on, on free ports.
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { UserStore } from '../../agent/users/store.js';
import { productionNode } from '../production-node.js';
import { runLoad, sensorPayload, type LoadOptions, type LoadResult } from './load.js';
import { startProcess, type Started } from './processes.js';

const CLI = resolve(import.meta.dirname, '../../bundle/edge-agent.cjs');
const BROKER_ONLY = resolve(import.meta.dirname, 'broker-only.js');
export const BENCH_USER = { name: 'bench', password: 'bench-password' };
/** What every publisher of a benchmark publishes to. */
export const benchTopic = (i: number) => `bench/${BENCH_USER.name}/sensor-${i}`;

/** How the unit and `npm start` run the agent: a bounded V8 heap, malloc that gives memory back. */
const { args: AGENT_NODE_FLAGS, env: AGENT_ENV } = productionNode();
/** BENCH_NODE_FLAGS='--flag ...': more Node flags for the agents a benchmark runs (trying GC settings, --trace-gc). */
const EXTRA_FLAGS = process.env.BENCH_NODE_FLAGS?.split(' ').filter(Boolean) ?? [];
/** BENCH_PROFILE_DIR=dir: CPU profiles of the agents a benchmark runs, for finding where time goes. */
const PROFILE_FLAGS = process.env.BENCH_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`] : [];

/**
 * `program`: the agent CLI (`run`), the broker-only harness, or the path of a single executable of
 * the agent (with `env`, its environment: the systemd unit's, say; else `npm start`'s flags).
 */
export async function startBenchAgent(
  dir: string,
  extra: Record<string, unknown> = {},
  program: 'agent' | 'broker-only' | { binary: string; env?: NodeJS.ProcessEnv } = 'agent',
): Promise<Started> {
  const config = join(dir, 'config.yaml');
  const users = join(dir, 'users.json');
  await new UserStore(users).add(BENCH_USER.name, BENCH_USER.password, ['sensor']);
  writeFileSync(
    config,
    stringify({
      agent: { dataDir: join(dir, 'data') },
      log: { level: 'warn' },
      broker: {
        mqtt: { host: '127.0.0.1', port: 0 },
        allowAnonymous: false,
        usersFile: users,
        acl: [{ role: 'sensor', publish: ['bench/%u/#'], subscribe: [] }],
      },
      web: { http: { host: '127.0.0.1', port: 0 } },
      ...extra,
    }),
  );
  // The single executable takes its Node flags as the systemd unit gives them.
  if (typeof program === 'object')
    return startProcess(
      ['run', '--config', config],
      program.env ?? { ...AGENT_ENV, NODE_OPTIONS: AGENT_NODE_FLAGS.join(' ') },
      program.binary,
    );
  return program === 'agent'
    ? startProcess([...AGENT_NODE_FLAGS, ...EXTRA_FLAGS, ...PROFILE_FLAGS, CLI, '--config', config], AGENT_ENV)
    : startProcess([BROKER_ONLY, config]);
}

/** The benchmarks' load: 8 publishers of the sensor payload, logged in as the bench user or not. */
export function benchLoad(
  port: number,
  qos: 0 | 1,
  messagesPerPublisher: number,
  auth: boolean,
  extra: Partial<LoadOptions> = {},
): Promise<LoadResult> {
  return runLoad({
    port,
    publishers: 8,
    messagesPerPublisher,
    qos,
    window: 100,
    ...(auth ? { username: BENCH_USER.name, password: BENCH_USER.password } : {}),
    topic: benchTopic,
    payload: sensorPayload(),
    ...extra,
  });
}
