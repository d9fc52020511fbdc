// Places in the minified bundles (scripts/bundle.ts) for npm run map-stack's tests.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../scripts/project-root.js';

/** A stack frame at where `literal` (found once) is in the bundle `file`, as V8 writes one. */
export function frameAt(file: string, literal: string): string {
  const text = readFileSync(file, 'latin1');
  const at = text.indexOf(literal);
  if (at === -1 || text.indexOf(literal, at + 1) !== -1) throw new Error(`${literal}: not once in ${file}`);
  const before = text.slice(0, at).split('\n');
  return `    at x (${file}:${before.length}:${before.at(-1)!.length + 1})`;
}

/** The line of `source` that holds `literal` (from 1). */
export const lineOf = (source: string, literal: string) =>
  readFileSync(join(projectRoot(), source), 'utf8')
    .split('\n')
    .findIndex((l) => l.includes(literal)) + 1;
