// How the agent's Node runs in production: the systemd unit's Environment= (`npm start` runs the
// same; test/packaging checks the two agree). Benchmarks and tests that measure the agent as shipped
// take it from here rather than from copies.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from './project-root.js';

/** The unit's Environment= lines as variables (systemd's quoting: "..." keeps spaces). */
export function unitEnvironment(unitText: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of unitText.split('\n')) {
    if (!line.startsWith('Environment=')) continue;
    for (const m of line.slice('Environment='.length).matchAll(/"([^"]*)"|(\S+)/g)) {
      const item = m[1] ?? m[2];
      const eq = item.indexOf('=');
      env[item.slice(0, eq)] = item.slice(eq + 1).replace(/^"|"$/g, '');
    }
  }
  return env;
}

/** The unit's variables: `NODE_OPTIONS` as Node's arguments, the rest (malloc's) as environment. */
export function productionNode(): { args: string[]; env: Record<string, string> } {
  const { NODE_OPTIONS = '', ...env } = unitEnvironment(readFileSync(join(projectRoot(), 'systemd/edge-agent.service'), 'utf8'));
  return { args: NODE_OPTIONS.split(' ').filter(Boolean), env };
}
