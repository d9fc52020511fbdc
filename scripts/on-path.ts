import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** Whether a program of that name is in a folder of PATH (to name a missing package before a build fails deep inside). */
export function isOnPath(tool: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => dir && existsSync(join(dir, tool)));
}
