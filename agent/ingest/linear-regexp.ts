// Schema patterns run on RE2 (Google's linear-time engine, as WebAssembly), never on V8's
// backtracking one: no payload can make a pattern like ^(a+)+$ hold the main thread. RE2 has no
// backreferences or lookarounds; a pattern that uses them is refused when its schema is loaded.
import { createRequire } from 'node:module';
import type { CodeOptions } from 'ajv';
import type { RE2 as RE2Class } from 're2-wasm';

let RE2: typeof RE2Class | undefined;

/** Loaded when the first pattern is compiled: it takes about 9 MB, which agents without patterns keep. */
function engine(): typeof RE2Class {
  // The single executable's build bundles this require (scripts/binary/build.ts).
  RE2 ??= (createRequire(import.meta.url)('re2-wasm') as { RE2: typeof RE2Class }).RE2;
  return RE2;
}

/** A pattern as AJV compiles one (always with Unicode, as JSON Schema's patterns are). */
export const linearRegExp: NonNullable<CodeOptions['regExp']> = Object.assign(
  (pattern: string, flags: string) => new (engine())(pattern, flags.includes('u') ? flags : `${flags}u`),
  { code: 'linearRegExp' },
);

/** Why RE2 cannot run `pattern`, or undefined when it can. */
export function patternProblem(pattern: string): string | undefined {
  try {
    linearRegExp(pattern, 'u');
    return undefined;
  } catch (err) {
    return `${(err as Error).message.replace(/^Invalid regular expression: /, '')} (patterns run on RE2, in linear time: no backreferences or lookarounds)`;
  }
}
