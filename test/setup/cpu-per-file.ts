// TEST_CPU_LOG=<file>: each test file appends the CPU it used, its own and its children's (the agents,
// builds and browsers it started and waited for), to see what the suite's time is made of
// (docs/where-time-goes.md). Files share their worker process: each records what the worker used
// since the file before it ended.
import { appendFileSync, readFileSync } from 'node:fs';
import { afterAll } from 'vitest';

const log = process.env.TEST_CPU_LOG;

/** The worker's CPU so far, its own and its waited-for children's, in seconds. */
function used(): { own: number; children: number } {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
  const seconds = (...at: number[]) => at.reduce((sum, i) => sum + Number(fields[i]), 0) / 100; // clock ticks
  return { own: seconds(11, 12), children: seconds(13, 14) };
}

if (log) {
  const shared = globalThis as { cpuAtFileEnd?: { own: number; children: number } };
  // Vitest reads the hook's first parameter as a fixture pattern: an empty one; the file is the second.
  afterAll(({}, file: { file?: { filepath: string } }) => {
    const now = used();
    const before = shared.cpuAtFileEnd ?? { own: 0, children: 0 };
    shared.cpuAtFileEnd = now;
    const own = now.own - before.own;
    const children = now.children - before.children;
    appendFileSync(log, `${(own + children).toFixed(1)}\t${own.toFixed(1)}\t${children.toFixed(1)}\t${file.file?.filepath}\n`);
  });
}
