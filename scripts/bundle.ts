// The agent as one CommonJS file and its database thread as another. `npm run build` writes them to
// dist/bundle for `npm start` and the package's `edge-agent` command: loading dist's modules and
// the packages' one by one took a quarter of the agent's CPU to ready (1.38 s against 1.02 s
// bundled, here; on a Pi several times that, at every start and every command). The single
// executable embeds its own (scripts/binary/build.ts), with the native addons as assets.
import { chmodSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { build, type Plugin } from 'esbuild';
import { projectRoot } from './project-root.js';

export interface BundleOptions {
  /** The folder holding agent/: the sources (.ts) or dist (.js, with the generated config validator). */
  from: string;
  extension: '.ts' | '.js';
  outdir: string;
  /** The output name of agent/cli. */
  main: string;
  target: string;
  external?: string[];
  plugins?: Plugin[];
}

/** The `debug` package, as every bundled package asks for it: its quiet stand-in (agent/lib/quiet-debug.cjs). */
function quietDebug(root: string): Plugin {
  const standIn = join(root, 'agent/lib/quiet-debug.cjs');
  return {
    name: 'quiet-debug',
    setup(b) {
      b.onResolve({ filter: /^debug$/ }, (args) => (args.importer === standIn ? undefined : { path: standIn }));
    },
  };
}

/**
 * Bundle the agent; returns the two files. The worker's place, workers/ beside the main file, is
 * what agent/consume/db/db-worker.ts looks for.
 */
export async function bundleAgent(o: BundleOptions): Promise<{ main: string; worker: string }> {
  await build({
    entryPoints: {
      [o.main]: join(o.from, `agent/cli${o.extension}`),
      'workers/db-host': join(o.from, `agent/consume/db/db-host${o.extension}`),
    },
    outdir: o.outdir,
    outExtension: { '.js': '.cjs' },
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: o.target,
    // Whole minification: V8 keeps a script's source for as long as it runs (to compile functions
    // when first called), so every byte of it is resident: names and syntax minified took 2 MB off
    // the single executable at rest (keepNames, for readable stack traces, gave 1.9 MB of it back in
    // the functions' own `name` properties). The source map beside each file names the places of a
    // stack trace: npm run map-stack.
    minify: true,
    sourcemap: 'external',
    sourcesContent: false,
    legalComments: 'none',
    logLevel: 'warning',
    // import() of a package left outside (onoff) as require(): the source checkout's loader compiles
    // the bundle as a script (scripts/bundle-loader.ts), where import() needs an experimental hook.
    supported: { 'dynamic-import': false },
    // import.meta.url in CommonJS: this file's URL (createRequire and new URL use it).
    define: { 'import.meta.url': '__import_meta_url', 'import.meta.dirname': '__dirname' },
    banner: { js: 'const __import_meta_url = require("node:url").pathToFileURL(__filename).href;' },
    external: o.external,
    plugins: [quietDebug(projectRoot()), ...(o.plugins ?? [])],
  });
  return { main: join(o.outdir, `${o.main}.cjs`), worker: join(o.outdir, 'workers/db-host.cjs') };
}

/**
 * Packages loaded from node_modules as installed: native addons (node-gyp and prebuilt binaries found
 * beside their package) and re2-wasm's WebAssembly, each found by its path. (Swagger UI is bundled: the
 * agent names its files' folder; loaded from node_modules, it brought second copies of yaml and
 * @fastify/static, 70 ms of the start.)
 */
const INSTALLED = ['better-sqlite3-multiple-ciphers', 'classic-level', 'lz4-napi', 'epoll', 'onoff', 're2-wasm'];

/**
 * dist/bundle/agent.cjs and dist/bundle/workers/db-host.cjs, from dist (after the config validator
 * is generated), and the command that runs the agent with V8's code cache, dist/bundle/edge-agent.cjs
 * (scripts/bundle-loader.ts; the caches are made by scripts/code-cache.ts once the build is done).
 */
export async function bundleDist(root = projectRoot()): Promise<string> {
  const outdir = join(root, 'dist/bundle');
  rmSync(join(outdir, 'code-cache'), { recursive: true, force: true });
  const out = await bundleAgent({
    from: join(root, 'dist'),
    extension: '.js',
    outdir,
    main: 'agent',
    target: 'node20',
    external: INSTALLED,
  });
  // The loader reads the bundle as Latin-1 (a copy, not a decoding): esbuild writes ASCII by default.
  const nonAscii = readFileSync(out.main).findIndex((byte) => byte > 0x7f);
  if (nonAscii !== -1) throw new Error(`${out.main}: a byte outside ASCII at ${nonAscii}; the loader reads the bundle as Latin-1`);
  const command = join(outdir, 'edge-agent.cjs');
  await build({
    entryPoints: [join(root, 'dist/scripts/bundle-loader.js')],
    outfile: command,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    logLevel: 'warning',
    define: { 'import.meta.dirname': '__dirname' },
    banner: { js: '#!/usr/bin/env node' },
  });
  chmodSync(command, 0o755);
  return command;
}

if (import.meta.filename === process.argv[1]) await bundleDist();
