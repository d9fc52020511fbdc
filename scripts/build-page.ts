// Builds the status page (agent/serve/web/page) into dist/page: one script and one stylesheet named by
// their content hash, index.html pointing at them, and each file also brotli- and gzip-compressed
// for the server to send as they are.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { projectRoot } from './project-root.js';

const ROOT = projectRoot();
export const PAGE_OUT = join(ROOT, 'dist/page');
const SOURCE = join(ROOT, 'agent/serve/web/page');

export async function buildPage(): Promise<void> {
  rmSync(PAGE_OUT, { recursive: true, force: true });
  mkdirSync(PAGE_OUT, { recursive: true });
  const result = await build({
    entryPoints: [join(SOURCE, 'main.ts')],
    bundle: true,
    minify: true,
    format: 'esm',
    // Phones and tablets a few years old.
    target: ['chrome100', 'safari15', 'firefox100'],
    outdir: PAGE_OUT,
    entryNames: '[name]-[hash]',
    metafile: true,
    legalComments: 'eof',
    logLevel: 'warning',
  });
  const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
  const js = outputs.find((f) => f.endsWith('.js'));
  const css = outputs.find((f) => f.endsWith('.css'));
  if (!js || !css) throw new Error(`the page build made ${outputs.join(', ')}: expected a .js and a .css`);
  writeFileSync(
    join(PAGE_OUT, 'index.html'),
    readFileSync(join(SOURCE, 'index.html'), 'utf8').replace('{{js}}', js).replace('{{css}}', css),
  );
  for (const name of ['index.html', js, css]) {
    const bytes = readFileSync(join(PAGE_OUT, name));
    writeFileSync(
      join(PAGE_OUT, `${name}.br`),
      brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length } }),
    );
    writeFileSync(join(PAGE_OUT, `${name}.gz`), gzipSync(bytes, { level: 9 }));
  }
}

if (import.meta.filename === process.argv[1]) {
  await buildPage();
}
