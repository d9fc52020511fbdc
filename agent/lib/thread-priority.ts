// A thread's own CPU priority. On Linux nice is a thread's, not the process's: setpriority() of
// the calling thread (who 0) leaves the agent's other threads as they were.
import { getPriority, setPriority } from 'node:os';

/** The highest nice Linux has (the lowest priority). */
const LOWEST = 19;

/**
 * Make the calling thread `by` nicer than it is (at most 19). Giving up priority needs no
 * privilege; a sandbox that refuses setpriority() leaves the thread as it was.
 */
export function lowerThreadPriority(by: number): void {
  try {
    setPriority(0, Math.min(LOWEST, getPriority(0) + by));
  } catch {
    // refused (a seccomp filter without setpriority): the thread keeps the process's priority
  }
}
