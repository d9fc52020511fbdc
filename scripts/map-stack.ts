// npm run map-stack -- [maps folder] < trace: a stack trace of the bundled agent (its names and
// places minified, scripts/bundle.ts) with each place in a bundle given as the source's file, line
// and column. The maps folder: dist/bundle (npm start's, the default) or
// dist/edge-agent-linux-<arch>.maps (the single executable's) of the same build.
import { readdirSync, readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { basename, join, relative, resolve } from 'node:path';
import { projectRoot } from './project-root.js';

/** A place in a bundle as a stack trace gives it: file, line and column (both from 1). */
const PLACE = /([^\s()]+\.cjs):(\d+):(\d+)/g;

/** The maps under `dir`, by the name of the bundle each maps (agent.cjs, main.cjs, db-host.cjs). */
export function loadMaps(dir: string): Map<string, { map: SourceMap; dir: string }> {
  const maps = new Map<string, { map: SourceMap; dir: string }>();
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.cjs.map')) continue;
    const payload = JSON.parse(readFileSync(join(entry.parentPath, entry.name), 'utf8')) as ConstructorParameters<typeof SourceMap>[0];
    maps.set(entry.name.slice(0, -'.map'.length), { map: new SourceMap(payload), dir: entry.parentPath });
  }
  return maps;
}

/** The trace's text with every place a map covers replaced by its source's (relative to the project). */
export function mapStack(trace: string, maps: ReturnType<typeof loadMaps>, root = projectRoot()): string {
  return trace.replace(PLACE, (place, file: string, line: string, column: string) => {
    const found = maps.get(basename(file));
    const entry = found?.map.findEntry(Number(line) - 1, Number(column) - 1);
    if (!found || !entry || !('originalSource' in entry)) return place;
    return `${relative(root, resolve(found.dir, entry.originalSource))}:${entry.originalLine + 1}:${entry.originalColumn + 1}`;
  });
}

if (import.meta.filename === process.argv[1]) {
  const dir = resolve(process.argv[2] ?? join(projectRoot(), 'dist/bundle'));
  process.stdout.write(mapStack(readFileSync(0, 'utf8'), loadMaps(dir)));
}
