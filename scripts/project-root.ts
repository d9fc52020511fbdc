// The project's folder, found from a module's own (scripts run from dist/ once built, from the sources in tests).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

export function projectRoot(from = import.meta.dirname): string {
  return existsSync(join(from, 'package-lock.json')) ? from : projectRoot(dirname(from));
}
