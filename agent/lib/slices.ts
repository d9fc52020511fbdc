// Long work on the main thread a slice at a time, the event loop running between slices: done in
// one go it would hold sensors' PUBACKs (and every other answer) that long. All sliced work shares
// one queue and one slice runs per turn of the event loop, whoever it belongs to: ten queries
// folding the log's tail at once hold a turn no longer than one does.

/** Slices waiting their turn, first come first served. */
const waiting: (() => void)[] = [];
let pumping = false;

function pump(): void {
  waiting.shift()?.();
  if (waiting.length) setImmediate(pump);
  else pumping = false;
}

/** Resolves in a turn of the event loop of its own, after the slices that asked before it. */
function turn(): Promise<void> {
  return new Promise((resolve) => {
    waiting.push(resolve);
    if (!pumping) {
      pumping = true;
      setImmediate(pump);
    }
  });
}

/**
 * `work(from, to)` over [0, count) in slices of `size`; a slice's `work` returning false ends it
 * there. Encoding thousands of readings for a sink, or looking through the log's tail for a query,
 * is tens of milliseconds of CPU.
 */
export async function inSlices(count: number, work: (from: number, to: number) => unknown, size = 500): Promise<void> {
  for (let from = 0; from < count; from += size) {
    if (from > 0 || waiting.length) await turn();
    if (work(from, Math.min(count, from + size)) === false) return;
  }
}
