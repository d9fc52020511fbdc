// `npm run build`'s first step: each TypeScript source tsconfig.build.json names into dist/, one ES
// module each, its types stripped by esbuild (as the single executable's bundle is made). The types are
// checked by `npm run typecheck` (tsc, in `npm test`); a second tsc pass here took 12 s of CPU for the
// same files (far longer on a Pi). Plain JavaScript: it runs before anything is compiled.
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import ts from 'typescript';

const root = join(import.meta.dirname, '..');
const CONFIG = join(root, 'tsconfig.build.json');

/** The files tsc would compile: tsconfig.build.json's include and exclude, read by TypeScript itself. */
function sources() {
  const { config, error } = ts.readConfigFile(CONFIG, (path) => readFileSync(path, 'utf8'));
  if (error) throw new Error(ts.flattenDiagnosticMessageText(error.messageText, '\n'));
  const parsed = ts.parseJsonConfigFileContent(config, ts.sys, root, undefined, CONFIG);
  if (parsed.errors.length) throw new Error(parsed.errors.map((e) => ts.flattenDiagnosticMessageText(e.messageText, '\n')).join('\n'));
  return { files: parsed.fileNames.filter((f) => !f.endsWith('.d.ts') && !f.endsWith('.d.mts')), outDir: parsed.options.outDir };
}

const { files, outDir } = sources();
await build({
  entryPoints: files,
  outdir: outDir,
  outbase: root,
  format: 'esm',
  platform: 'node',
  target: 'es2022', // tsconfig's
  supported: { 'import-attributes': true }, // kept, as tsc keeps them: Node needs `with { type: 'json' }`
  sourcemap: true,
  tsconfig: CONFIG,
  logLevel: 'warning',
});
// What tsc does for a JSON module a source imports (agent/lib/version.ts: the package's version).
copyFileSync(join(root, 'package.json'), join(outDir, 'package.json'));
