// Long work on the main thread a slice at a time, the event loop running between slices: done in
// one go it would hold sensors' PUBACKs (and every other answer) that long.

/**
 * `work(from, to)` over [0, count) in slices of `size`; a slice's `work` returning false ends it
 * there. Encoding thousands of readings for a sink, or looking through the log's tail for a query,
 * is tens of milliseconds of CPU.
 */
export async function inSlices(count: number, work: (from: number, to: number) => unknown, size = 500): Promise<void> {
  for (let from = 0; from < count; from += size) {
    if (from > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    if (work(from, Math.min(count, from + size)) === false) return;
  }
}
