import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { collector, OLD_GROWTH } from '../../agent/consume/db/db-thread.js';

const isMajor = (e: PerformanceEntry) =>
  (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR;

describe("the database thread's own collections", () => {
  it('collects once the old generation has grown OLD_GROWTH past what the last collection kept, not before', () => {
    let used = 5_000_000;
    let collections = 0;
    const check = collector(
      () => used,
      () => {
        collections++;
        used = 5_200_000; // what the collection kept
      },
    );
    used += OLD_GROWTH - 1; // just under: no collection (the positive control below collects)
    expect(check()).toBe(false);
    used += 1;
    expect(check()).toBe(true);
    expect(collections).toBe(1);
    // Measured from what it kept, not from where it started.
    used = 5_200_000 + OLD_GROWTH - 1;
    expect(check()).toBe(false);
    used = 5_200_000 + OLD_GROWTH;
    expect(check()).toBe(true);
    expect(collections).toBe(2);
  });

  it("gets V8's gc() for the thread without exposing it to the code the thread runs", async () => {
    let used = 0;
    const check = collector(() => (used += OLD_GROWTH)); // always over: collects with the real gc()
    const majors: PerformanceEntry[] = [];
    const seen = new PerformanceObserver((list) => majors.push(...list.getEntries().filter((e) => isMajor(e))));
    seen.observe({ entryTypes: ['gc'] });
    try {
      expect(check()).toBe(true);
      await new Promise((r) => setTimeout(r, 50)); // gc entries are queued
    } finally {
      seen.disconnect();
    }
    expect(majors.length).toBeGreaterThan(0);
    expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
  });
});
