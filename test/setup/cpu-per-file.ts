// TEST_CPU_LOG=<file>: each test file appends the CPU it used, its own and its children's (the agents,
// builds and browsers it started and waited for), to see what the suite's time is made of
// (docs/where-time-goes.md). Each file runs in a process of its own (pool: forks).
import { appendFileSync, readFileSync } from 'node:fs';
import { afterAll } from 'vitest';

const log = process.env.TEST_CPU_LOG;
if (log) {
  // Vitest reads the hook's first parameter as a fixture pattern: an empty one; the file is the second.
  afterAll(({}, file: { file?: { filepath: string } }) => {
    const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
    const seconds = (...at: number[]) => at.reduce((sum, i) => sum + Number(fields[i]), 0) / 100; // clock ticks
    const own = seconds(11, 12);
    const children = seconds(13, 14);
    appendFileSync(log, `${(own + children).toFixed(1)}\t${own.toFixed(1)}\t${children.toFixed(1)}\t${file.file?.filepath}\n`);
  });
}
