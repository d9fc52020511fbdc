// Running as a single executable (Node's SEA): the native addons and the worker threads' scripts
// are assets inside the binary. dlopen and new Worker need files, so each is written once to a
// private cache folder per build (systemd's CacheDirectory, else ~/.cache) and loaded from there.
import { existsSync, lstatSync, mkdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as sea from 'node:sea';

export function isSea(): boolean {
  return sea.isSea();
}

/** Asset names, and what the bundle's build wrote: the list is an asset itself. */
const MANIFEST = 'manifest.json';

interface Manifest {
  build: string;
  assets: string[];
}

let manifest: Manifest | undefined;
function readManifest(): Manifest {
  manifest ??= JSON.parse(Buffer.from(sea.getAsset(MANIFEST)).toString('utf8')) as Manifest;
  return manifest;
}

/** The folder assets are written to: the agent's alone (0700, its owner), one per build. */
function cacheFolder(): string {
  const root =
    process.env.CACHE_DIRECTORY?.split(':')[0] ??
    (process.env.XDG_CACHE_HOME
      ? join(process.env.XDG_CACHE_HOME, 'edge-agent')
      : homedir()
        ? join(homedir(), '.cache', 'edge-agent')
        : join(tmpdir(), `edge-agent-${process.getuid?.()}`));
  const dir = join(root, readManifest().build);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const d of [root, dir]) {
    const st = lstatSync(d);
    // Code loaded from here runs as the agent: nobody else may have put it there.
    if (!st.isDirectory() || st.uid !== process.getuid?.() || (st.mode & 0o022) !== 0)
      throw new Error(`${d}: not a folder of this user's alone; native code is not loaded from it`);
  }
  return dir;
}

/**
 * The path of an asset written out, once. The folder is this build's and this user's alone and a
 * file is renamed into place whole, so one of the asset's size is the asset: it is not read back
 * (which kept all 12 MB of the binary's assets in memory, and copies of them in the heap, at every start).
 */
export function assetPath(name: string): string {
  const dir = cacheFolder();
  const path = join(dir, name);
  const raw = sea.getRawAsset(name) as ArrayBuffer; // a view of the binary's pages, not a copy
  if (existsSync(path) && statSync(path).size === raw.byteLength) return path;
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  writeFileSync(tmp, new Uint8Array(raw), { mode: 0o600 });
  renameSync(tmp, path);
  return path;
}

/** The config's validator as a script (scripts/config-validator.ts), evaluated at each load. */
export const CONFIG_VALIDATOR_ASSET = 'config/generated-validator.cjs';

/** An asset's text, read from the binary's pages. */
export function assetText(name: string): string {
  return Buffer.from(sea.getRawAsset(name) as ArrayBuffer).toString('utf8');
}

/** An asset's bytes (WebAssembly, which needs no file). */
export function assetBytes(name: string): Uint8Array {
  return new Uint8Array(sea.getAsset(name));
}

/** A native addon of the bundle (its name as the build wrote it). */
export function loadNative(name: string): unknown {
  const module = { exports: {} as unknown };
  process.dlopen(module, assetPath(`native/${name}.node`));
  return module.exports;
}

/** Write every asset out now, before worker threads ask for theirs (but the text read from memory). */
export function extractAssets(): void {
  if (!isSea()) return;
  for (const name of readManifest().assets) if (name !== CONFIG_VALIDATOR_ASSET) assetPath(name);
}
