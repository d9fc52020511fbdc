// Building the binary for the Pi on a PC: what is missing is named before anything runs.
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { missingTools } from '../../scripts/binary/build.js';

const run = promisify(execFile);
const other = process.arch === 'x64' ? 'arm64' : 'x64';

describe('build prerequisites', () => {
  it("names Debian's cross-compiler packages when they are missing, and nothing when they are there", () => {
    expect(missingTools('arm64', () => false)).toMatch(
      /aarch64-linux-gnu-gcc, aarch64-linux-gnu-g\+\+, aarch64-linux-gnu-ar, aarch64-linux-gnu-strip: .*sudo apt install g\+\+-aarch64-linux-gnu binutils-aarch64-linux-gnu/,
    );
    expect(missingTools('arm64', (t) => t !== 'aarch64-linux-gnu-strip')).toMatch(/needs the cross compilers aarch64-linux-gnu-strip:/);
    expect(missingTools('arm64', () => true)).toBeUndefined();
    expect(missingTools(process.arch as 'x64' | 'arm64', () => false)).toBeUndefined(); // the machine's own: its compilers
  });

  it.runIf(process.arch === 'x64' && missingTools('arm64') !== undefined)(
    'npm run build:binary -- --arch arm64 on this PC stops at once with that message',
    async () => {
      const err = (await run(process.execPath, [resolve(import.meta.dirname, '../../dist/scripts/binary/build.js'), '--arch', other]).catch(
        (e: unknown) => e,
      )) as { code: number; stderr: string };
      expect(err.code).toBe(1);
      expect(err.stderr).toMatch(/^building for arm64 on x64 needs the cross compilers .*apt install g\+\+-aarch64-linux-gnu/);
    },
  );
});
