// The `edge-agent` command of a source checkout (dist/bundle/edge-agent.cjs, bundled from this file):
// it runs the bundled agent beside it (agent.cjs) with V8's code cache for it, when the build made
// one for this Node and these flags (scripts/code-cache.ts). Compiling the bundle's functions took
// about 130 ms of the 1 s of CPU to ready here (more on a Pi), at every start and every command.
// NODE_DEBUG=code-cache says whether a cache was found and taken.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import { join } from 'node:path';
import { debuglog } from 'node:util';
import { Script } from 'node:vm';

const debug = debuglog('code-cache');
const file = join(import.meta.dirname, 'agent.cjs');
const bytes = readFileSync(file);
// A cache belongs to one source, one V8 and one set of flags, and V8 itself checks only the source's
// length: the source's hash is in the cache's name.
const key = createHash('sha1')
  .update(bytes)
  .update(JSON.stringify([process.version, process.arch, process.execArgv, process.env.NODE_OPTIONS ?? '']))
  .digest('hex');
const cachePath = join(import.meta.dirname, 'code-cache', `${key}.bin`);

let cachedData: Buffer | undefined;
try {
  cachedData = readFileSync(cachePath);
} catch {
  // none for this bundle and these flags: compiled as Node would
}
// latin1: a copy, where decoding UTF-8 took 40-50 ms; the build checks the bundle is ASCII. The
// bundle has no import() (scripts/bundle.ts), which a script compiled here could not run.
const script = new Script(Module.wrap(bytes.toString('latin1').replace(/^#!.*/, '')), { filename: file, cachedData });
debug('%s', !cachedData ? `none for ${key}` : script.cachedDataRejected ? `${key} rejected` : `${key} accepted`);
cachedData = undefined;

// Set by scripts/code-cache.ts: write the cache for this Node and these flags when the agent stops.
if (process.env.WRITE_BUNDLE_CODE_CACHE) {
  process.once('exit', (code) => {
    if (code !== 0) return;
    // At the end of the run: the functions compiled by then (lazily, as start-up called them) are in it.
    mkdirSync(join(cachePath, '..'), { recursive: true, mode: 0o755 });
    writeFileSync(`${cachePath}.tmp`, script.createCachedData(), { mode: 0o644 });
    renameSync(`${cachePath}.tmp`, cachePath);
  });
}

const agent = { exports: {}, filename: file, id: file };
const wrapper = script.runInThisContext() as (
  exports: object,
  require: NodeJS.Require,
  module: object,
  filename: string,
  dirname: string,
) => void;
wrapper.call(agent.exports, agent.exports, createRequire(file), agent, file, import.meta.dirname);
