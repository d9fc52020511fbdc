// Runs aedes-persistence's own abstract suite, unmodified, against our LevelDB persistence (built in dist/).
import { test } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import abstract from 'aedes-persistence/abstract.js';
import { LevelPersistence } from '../../dist/embedded-broker/persistence/level.js';

const dirs = [];
process.on('exit', () => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

abstract({
  test,
  testAsync: true,
  persistence: async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aedes-level-'));
    dirs.push(dir);
    return new LevelPersistence({ path: join(dir, 'db') });
  },
});
