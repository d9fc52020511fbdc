import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/** Files that take minutes (builds, a three-minute wear run, a soak): started first, so the rest runs beside them. */
const LONG = ['packages.test.ts', 'wear.test.ts', 'export-scale.test.ts', 'soak.test.ts', 'page.test.ts'];

class LongFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rank = (f: TestSpecification) => {
      const i = LONG.findIndex((name) => f.moduleId.endsWith(`/${name}`));
      return i === -1 ? LONG.length : i;
    };
    return [...sorted].sort((a, b) => rank(a) - rank(b));
  }
}

export default defineConfig({
  // graphql-js as Node loads it (its CommonJS main): graphql-query-complexity and graphql-ws require
  // that copy, and two copies of graphql-js do not recognise each other's schemas.
  resolve: { alias: [{ find: /^graphql$/, replacement: 'graphql/index.js' }] },
  test: {
    include: ['test/**/*.test.ts', 'embedded-broker/**/*.test.ts', 'agent/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Four worker processes for all the files, not one per file: each file loaded Vitest, the helpers
    // and the agent's modules again (the suite took 458 s here isolated, 374 s not). What a file
    // changes in its process and the next one would see is reset in test/setup/process-state.ts.
    isolate: false,
    // Most files wait on servers, sockets and timers more than they compute: four at once on two cores.
    // Files share only the PostgreSQL cluster (a database each); everything else is theirs, on free ports.
    maxWorkers: Number(process.env.TEST_WORKERS ?? 4),
    sequence: { sequencer: LongFirst },
    setupFiles: ['test/setup/process-state.ts', 'test/setup/temp-dirs.ts', 'test/setup/cpu-per-file.ts'],
  },
});
