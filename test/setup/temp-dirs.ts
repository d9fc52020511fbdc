// Every test file ends with the temporary folders it made removed, whatever its own hooks forgot:
// this hook, registered before the file's, runs after them (vitest runs after-hooks in reverse).
import { afterAll } from 'vitest';
import { removeTempDirs } from '../helpers/agent.js';

afterAll(() => {
  removeTempDirs();
});
