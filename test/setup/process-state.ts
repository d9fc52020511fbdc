// Test files share their worker process (vitest.config.ts: isolate false): each starts with the
// umask the worker started with, as a process of its own would (an in-process agent sets 077 for
// its data, agent/lib/private-files.ts, and it stays set after the agent stops).
import { beforeAll } from 'vitest';

const shared = globalThis as { workerUmask?: number };
if (shared.workerUmask === undefined) {
  shared.workerUmask = process.umask(0o022); // read by setting: umask() without an argument is deprecated
  process.umask(shared.workerUmask);
}

beforeAll(() => {
  process.umask(shared.workerUmask!);
});
