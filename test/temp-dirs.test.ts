// Temporary folders made by tests are removed when their file ends (test/setup/temp-dirs.ts), after
// the file's own afterAll hooks, which may still use them.
import { existsSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { removeTempDirs, tempDir } from './helpers/agent.js';

describe('temporary folders', () => {
  let kept: string;
  it('are removed, every one tempDir() made', () => {
    const made = [tempDir(), tempDir('edge-agent-other-')];
    made.forEach((dir) => expect(existsSync(dir)).toBe(true));
    expect(removeTempDirs()).toEqual(made);
    made.forEach((dir) => expect(existsSync(dir)).toBe(false));
    kept = tempDir();
  });

  // The file's own hooks come first: a folder made in a test is still there when they run.
  afterAll(() => {
    expect(existsSync(kept)).toBe(true);
  });
});
