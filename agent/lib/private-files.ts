// Data at rest is the agent's alone: its folders 0700 and files 0600, whatever the umask of the
// shell that started it, and whatever an earlier version left behind.
import { chmodSync, existsSync, lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** New files and folders get no bits for group or others. */
export function privateUmask(): void {
  process.umask(0o077);
}

/** Take group and other bits off everything under `path` (links are left alone); how many changed. */
export function makePrivate(path: string): number {
  if (!existsSync(path)) return 0;
  const st = lstatSync(path);
  if (st.isSymbolicLink()) return 0;
  let changed = 0;
  if ((st.mode & 0o077) !== 0) {
    chmodSync(path, st.mode & 0o700);
    changed++;
  }
  if (st.isDirectory()) for (const name of readdirSync(path)) changed += makePrivate(join(path, name));
  return changed;
}
