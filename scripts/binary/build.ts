// `npm run build:binary -- --arch x64|arm64`: the agent as one executable, dist/edge-agent-linux-<arch>.
// Node's single-executable-application support: an esbuild bundle (CommonJS) and its worker
// threads' bundles, the native addons built for the embedded Node (22 LTS, from npm's node-linux-*
// packages) as assets, injected into a copy of that Node with postject.
import { execFile, spawn } from 'node:child_process';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  rmSync,
  writeFileSync,
  chmodSync,
  readFileSync,
  statSync,
} from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { Plugin } from 'esbuild';
import { inject } from 'postject';
import { VERSION } from '../../agent/lib/version.js';
import { CONFIG_VALIDATOR_ASSET } from '../../agent/lib/sea.js';
import { configValidatorSource } from '../config-validator.js';
import { PAGE_OUT } from '../build-page.js';
import { projectRoot } from '../project-root.js';
import { bundleAgent } from '../bundle.js';
import { isOnPath } from '../on-path.js';

/** The Node the binary embeds: the current 22 LTS on npm. */
export const EMBEDDED_NODE = '22.23.5';
const LZ4_VERSION = '2.10.0';
const ROOT = projectRoot();
const CACHE = join(ROOT, '.cache/binary');
const SENTINEL = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

export type Arch = 'x64' | 'arm64';

/** A program run to the end, its output the caller's; asynchronous, so a test can do other work beside a compile. */
function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'], ...opts, env: { ...process.env, ...opts.env } });
    child.on('error', reject);
    child.on('exit', (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')}: ${signal ?? `exit ${code}`}`)),
    );
  });
}

/** A package from npm, unpacked once into the cache (npm pack: the registry the machine is set up for). */
async function fetchPackage(spec: string): Promise<string> {
  const dir = join(CACHE, 'packages', spec.replace(/[/@]/g, '_'));
  if (existsSync(join(dir, 'package.json'))) return dir;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const packed = await promisify(execFile)('npm', ['pack', spec, '--silent', '--pack-destination', dir], { encoding: 'utf8' });
  const tgz = packed.stdout.trim().split('\n').at(-1)!;
  await run('tar', ['xzf', join(dir, tgz), '-C', dir, '--strip-components=1']);
  rmSync(join(dir, tgz));
  return dir;
}

/** The toolchain for a target: the machine's own, or Debian's aarch64 cross compilers. */
function compilerEnv(arch: Arch): NodeJS.ProcessEnv {
  if (arch === process.arch) return {};
  const tool = (t: string) => `aarch64-linux-gnu-${t}`;
  return { CC: tool('gcc'), CXX: tool('g++'), LINK: tool('g++'), AR: tool('ar'), STRIP: tool('strip') };
}

/** npm's own node-gyp (the one `npm install` builds addons with). */
function nodeGyp(): string {
  const npmCli = process.env.npm_execpath ?? '/usr/lib/node_modules/npm/bin/npm-cli.js';
  return join(dirname(npmCli), '../node_modules/node-gyp/bin/node-gyp.js');
}

/** Build the addons that use V8's own API (not N-API) against the embedded Node's headers, for the target. */
async function buildAddon(pkg: string, output: string, arch: Arch, nodeDir: string): Promise<string> {
  const tree = join(CACHE, `addons-${arch}-${EMBEDDED_NODE}`);
  const dir = join(tree, 'node_modules', pkg);
  const built = join(dir, 'build/Release', output);
  if (existsSync(built)) return built;
  rmSync(dir, { recursive: true, force: true });
  cpSync(join(ROOT, 'node_modules', pkg), dir, { recursive: true, filter: (src) => !src.includes('/build/') });
  if (!existsSync(join(tree, 'node_modules/nan')))
    cpSync(join(ROOT, 'node_modules/nan'), join(tree, 'node_modules/nan'), { recursive: true });
  const linked = pkg === SQLITE_ADDON && linkInstalledSqlite(dir, arch);
  console.log(`building ${pkg} for ${arch} against Node ${EMBEDDED_NODE}${linked ? ' (SQLite: the library npm install compiled)' : ''}`);
  await gypRebuild(dir, arch, nodeDir);
  return built;
}

/** node-gyp in `dir`, against the embedded Node's headers, with the target's compilers. */
function gypRebuild(dir: string, arch: Arch, nodeDir: string): Promise<void> {
  return run(process.execPath, [nodeGyp(), 'rebuild', `--nodedir=${nodeDir}`, `--arch=${arch}`, '-j', '2'], {
    cwd: dir,
    env: { ...compilerEnv(arch), npm_config_nodedir: nodeDir, npm_config_build_from_source: 'true' },
  });
}

const SQLITE_ADDON = 'better-sqlite3-multiple-ciphers';

/**
 * SQLite itself (one 9 MB C file: a minute and a half of one core) does not depend on Node. For the
 * machine's own architecture, the addon for the embedded Node links the library `npm install` compiled
 * (when it did, not when it downloaded a prebuilt addon); only the addon's own C++ is compiled again.
 */
function linkInstalledSqlite(dir: string, arch: Arch): boolean {
  const installed = join(ROOT, 'node_modules', SQLITE_ADDON, 'build/Release');
  const lib = join(installed, 'sqlite3.a');
  const headers = join(installed, 'obj/gen/sqlite3');
  if (arch !== process.arch || !existsSync(lib) || !existsSync(join(headers, 'sqlite3.h'))) return false;
  const gyp = join(dir, 'binding.gyp');
  const dependency = "'dependencies': ['deps/sqlite3.gyp:sqlite3'],";
  const linked = `'include_dirs': [${JSON.stringify(headers)}], 'libraries': [${JSON.stringify(lib)}],`;
  writeFileSync(gyp, mustReplace(readFileSync(gyp, 'utf8'), dependency, linked).replaceAll(dependency, linked));
  return true;
}

/**
 * The agent's own addon (binding.gyp: N-API, so the one `npm install` built serves the embedded Node
 * too); for another architecture, built with its cross compilers.
 */
async function ownAddon(arch: Arch, nodeDir: string): Promise<string> {
  const installed = join(ROOT, 'build/Release/page_out.node');
  if (arch === process.arch && existsSync(installed)) return installed;
  const dir = join(CACHE, `own-${arch}-${EMBEDDED_NODE}`);
  const built = join(dir, 'build/Release/page_out.node');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  cpSync(join(ROOT, 'binding.gyp'), join(dir, 'binding.gyp'));
  cpSync(join(ROOT, 'agent/lib/native'), join(dir, 'agent/lib/native'), { recursive: true });
  await gypRebuild(dir, arch, nodeDir);
  return built;
}

/** The native addons of the bundle, by the names the bundle loads them by, built or taken for the target. */
async function nativeAddons(arch: Arch, nodeDir: string): Promise<Record<string, string>> {
  const lz4 =
    arch === 'x64'
      ? join(ROOT, 'node_modules/@antoniomuso/lz4-napi-linux-x64-gnu')
      : await fetchPackage(`@antoniomuso/lz4-napi-linux-arm64-gnu@${LZ4_VERSION}`);
  const classicLevel = join(ROOT, 'node_modules/classic-level/prebuilds', `linux-${arch}`);
  const [betterSqlite3, epoll, pageOut] = await Promise.all([
    buildAddon(SQLITE_ADDON, 'better_sqlite3.node', arch, nodeDir),
    buildAddon('epoll', 'epoll.node', arch, nodeDir),
    ownAddon(arch, nodeDir),
  ]);
  return {
    'better-sqlite3': betterSqlite3,
    epoll,
    'page-out': pageOut,
    // N-API: the package's own builds serve any Node; taken for the target explicitly, whatever npm installed here.
    'classic-level': join(
      classicLevel,
      readdirSync(classicLevel).find((f) => f.endsWith('.node') && !f.includes('musl'))!,
    ),
    'lz4-napi': join(
      lz4,
      readdirSync(lz4).find((f) => f.endsWith('.node'))!,
    ),
  };
}

const RE2_WASM_ASSET = 'wasm/re2.wasm';

/** `text` with `from` replaced, or an error when a package no longer has it. */
function mustReplace(text: string, from: string, to: string): string {
  if (!text.includes(from)) throw new Error(`${from}: no longer in the file this build edits`);
  return text.replace(from, to);
}

/** In the bundle, each addon comes from the binary's assets (agent/lib/sea.ts) instead of a path next to its package. */
function nativeFromAssets(): Plugin {
  const loader = JSON.stringify(join(ROOT, 'agent/lib/sea.ts'));
  const replace =
    (filter: RegExp, name: string, edit?: (text: string) => string): Plugin['setup'] =>
    (b) =>
      b.onLoad({ filter }, (args) => ({
        contents: edit ? edit(readFileSync(args.path, 'utf8')) : `module.exports = require(${loader}).loadNative(${JSON.stringify(name)});`,
        loader: args.path.endsWith('.ts') ? 'ts' : 'js',
        resolveDir: dirname(args.path),
      }));
  return {
    name: 'native-from-assets',
    setup(b) {
      replace(/classic-level[\\/]binding\.js$/, 'classic-level')(b);
      replace(/lz4-napi[\\/]index\.js$/, 'lz4-napi')(b);
      replace(/epoll[\\/]epoll\.js$/, 'epoll')(b);
      replace(/better-sqlite3-multiple-ciphers[\\/]lib[\\/]database\.js$/, 'better-sqlite3', (text) =>
        mustReplace(text, "require('bindings')('better_sqlite3.node')", `require(${loader}).loadNative('better-sqlite3')`),
      )(b);
      // RE2 (schema patterns): loaded when first used, bundled all the same; its WebAssembly an asset.
      replace(/agent[\\/]ingest[\\/]linear-regexp\.ts$/, 're2-wasm', (text) =>
        mustReplace(text, "createRequire(import.meta.url)('re2-wasm')", "require('re2-wasm')"),
      )(b);
      replace(/re2-wasm[\\/]build[\\/]wasm[\\/]re2\.js$/, 're2-wasm', (text) =>
        mustReplace(text, 'var wasmBinary;', `var wasmBinary = require(${loader}).assetBytes(${JSON.stringify(RE2_WASM_ASSET)});`),
      )(b);
    },
  };
}

/**
 * The generated config validator is not imported by the single executable: imported, its code and
 * bytecode held about 3 MB for the life of the process (RSS at rest, measured side by side); compiling
 * the schema instead took a third of a second of each start. It is an asset, evaluated at each load
 * of the config and let go (agent/config/validator.ts). The import stays outside the bundle and fails.
 */
function withoutGeneratedValidator(): Plugin {
  return {
    name: 'without-generated-validator',
    setup(b) {
      b.onResolve({ filter: /^\.\/generated-validator\.js$/ }, (args) => ({ path: args.path, external: true }));
    },
  };
}

/** The agent and its database thread, each one CommonJS file (what a SEA runs). */
async function bundle(out: string): Promise<Record<string, string>> {
  const files = await bundleAgent({
    from: ROOT,
    extension: '.ts',
    outdir: out,
    main: 'main',
    target: 'node22',
    plugins: [nativeFromAssets(), withoutGeneratedValidator()],
  });
  writeFileSync(join(out, 'generated-validator.cjs'), configValidatorSource('script'));
  return { 'workers/db-host.cjs': files.worker, [CONFIG_VALIDATOR_ASSET]: join(out, 'generated-validator.cjs') };
}

/** Files the web server serves: Swagger UI's and the status page (built by `npm run build`). */
function webAssets(): Record<string, string> {
  const swaggerUi = join(ROOT, 'node_modules/@fastify/swagger-ui/static');
  if (!existsSync(join(PAGE_OUT, 'index.html'))) throw new Error(`${PAGE_OUT} is missing: npm run build first`);
  return {
    ...Object.fromEntries(readdirSync(swaggerUi).map((f) => [`web/swagger-ui/${f}`, join(swaggerUi, f)])),
    ...Object.fromEntries(readdirSync(PAGE_OUT).map((f) => [`web/page/${f}`, join(PAGE_OUT, f)])),
  };
}

/**
 * What the build needs that is not in node_modules, checked before anything runs: for another
 * architecture, Debian's cross compilers (else the failure comes deep in node-gyp's output).
 */
export function missingTools(arch: Arch, onPath: (tool: string) => boolean = isOnPath): string | undefined {
  if (arch === process.arch) return undefined;
  const wanted = ['gcc', 'g++', 'ar', 'strip'].map((t) => `aarch64-linux-gnu-${t}`).filter((t) => !onPath(t));
  if (!wanted.length) return undefined;
  return `building for ${arch} on ${process.arch} needs the cross compilers ${wanted.join(', ')}: on Debian or Ubuntu, sudo apt install g++-aarch64-linux-gnu binutils-aarch64-linux-gnu (or build on a Pi itself: npm run build:binary)`;
}

/** A source map copied elsewhere, its sources' paths made relative to where it now is. */
function moveMap(from: string, to: string): void {
  const map = JSON.parse(readFileSync(from, 'utf8')) as { sources: string[] };
  map.sources = map.sources.map((source) => relative(dirname(to), resolve(dirname(from), source)));
  mkdirSync(dirname(to), { recursive: true });
  writeFileSync(to, JSON.stringify(map));
}

export async function buildBinary(arch: Arch): Promise<string> {
  const missing = missingTools(arch);
  if (missing) throw new Error(missing);
  const started = performance.now();
  const node = await fetchPackage(`node-linux-${arch}@${EMBEDDED_NODE}`);
  // The blob is made by a Node of the same version that runs here (the x64 one on this machine).
  const hostNode = join(await fetchPackage(`node-linux-${process.arch}@${EMBEDDED_NODE}`), 'bin/node');
  const work = join(CACHE, `work-${arch}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const workers = await bundle(work);
  const addons = await nativeAddons(arch, node);
  const assets: Record<string, string> = {
    ...workers,
    ...Object.fromEntries(Object.entries(addons).map(([name, path]) => [`native/${name}.node`, path])),
    [RE2_WASM_ASSET]: join(ROOT, 'node_modules/re2-wasm/build/wasm/re2.wasm'),
    ...webAssets(),
  };
  const hash = createHash('sha256');
  for (const path of [join(work, 'main.cjs'), ...Object.values(assets)]) hash.update(readFileSync(path));
  const manifest = { build: `${VERSION}-${arch}-${hash.digest('hex').slice(0, 12)}`, assets: Object.keys(assets) };
  writeFileSync(join(work, 'manifest.json'), JSON.stringify(manifest));
  assets['manifest.json'] = join(work, 'manifest.json');
  const config = {
    main: join(work, 'main.cjs'),
    output: join(work, 'sea.blob'),
    disableExperimentalSEAWarning: true,
    useSnapshot: false,
    useCodeCache: false,
    assets,
  };
  writeFileSync(join(work, 'sea-config.json'), JSON.stringify(config, null, 2));
  await run(hostNode, ['--experimental-sea-config', join(work, 'sea-config.json')]);

  const out = join(ROOT, 'dist', `edge-agent-linux-${arch}`);
  mkdirSync(dirname(out), { recursive: true });
  rmSync(out, { force: true });
  copyFileSync(join(node, 'bin/node'), out);
  chmodSync(out, 0o755);
  await inject(out, 'NODE_SEA_BLOB', readFileSync(join(work, 'sea.blob')), { sentinelFuse: SENTINEL });
  // Not shipped: what npm run map-stack reads to name the places of this build's stack traces.
  const maps = `${out}.maps`;
  rmSync(maps, { recursive: true, force: true });
  for (const map of ['main.cjs.map', 'workers/db-host.cjs.map']) moveMap(join(work, map), join(maps, map));
  console.log(
    `${out}: ${(statSync(out).size / 1e6).toFixed(1)} MB, Node ${EMBEDDED_NODE}, build ${manifest.build}, in ${((performance.now() - started) / 1000).toFixed(0)} s`,
  );
  return out;
}

function archArg(argv: string[]): Arch {
  const i = argv.indexOf('--arch');
  const arch = i >= 0 ? argv[i + 1] : process.arch;
  if (arch !== 'x64' && arch !== 'arm64') throw new Error(`--arch: x64 or arm64, not ${arch}`);
  return arch;
}

if (import.meta.filename === process.argv[1]) {
  buildBinary(archArg(process.argv.slice(2))).catch((err: Error) => {
    console.error(err.message);
    process.exit(1);
  });
}
