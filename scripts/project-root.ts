// The project's folder, found from a module's own (scripts run from dist/ once built, from the sources in tests).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

export function projectRoot(from = import.meta.dirname): string {
  if (existsSync(join(from, 'package-lock.json'))) return from;
  if (dirname(from) === from) throw new Error(`no package-lock.json in ${import.meta.dirname} or a folder above it`);
  return projectRoot(dirname(from));
}
