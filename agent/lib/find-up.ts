// A file of the agent's package, looked for from this module's folder upward: the sources
// (agent/lib), dist/agent/lib and the bundle (dist/bundle) sit at different depths below it.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The path of `relative` in the nearest folder at or above `from` that has it. */
export function findUp(relative: string, from = import.meta.dirname): string | undefined {
  const path = join(from, relative);
  if (existsSync(path)) return path;
  return dirname(from) === from ? undefined : findUp(relative, dirname(from));
}
