// The project's folder, found from a module's own (scripts run from dist/ once built, from the sources in tests).
import { dirname } from 'node:path';
import { findUp } from '../agent/lib/find-up.js';

export function projectRoot(from = import.meta.dirname): string {
  const lock = findUp('package-lock.json', from);
  if (!lock) throw new Error(`no package-lock.json in ${from} or a folder above it`);
  return dirname(lock);
}
