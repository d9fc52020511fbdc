// The benchmarks' profile summary: busy periods of a profile, counted and filled by function.
import { describe, expect, it } from 'vitest';
import { stalls } from '../scripts/bench/profile-summary.js';

const frame = (functionName: string, url = '') => ({ functionName, url, lineNumber: 0 });
const nodes = [
  { id: 1, callFrame: frame('(root)') },
  { id: 2, callFrame: frame('(idle)') },
  { id: 3, callFrame: frame('commit', 'file:///x/dist/agent/log/commit.js') },
  { id: 4, callFrame: frame('(garbage collector)') },
];

/** A profile of runs of samples 1 ms apart: [node id, how many]. */
function profile(runs: [number, number][]) {
  const samples = runs.flatMap(([id, n]) => Array<number>(n).fill(id));
  return { nodes, startTime: 0, endTime: samples.length * 1000, samples, timeDeltas: samples.map(() => 1000) };
}

describe('stalls', () => {
  it('counts busy periods by length and tells what filled the long ones', () => {
    // 30 ms busy, idle, 10 ms busy (short: not counted), idle, 50 ms busy (45 of them the collector)
    const s = stalls(
      profile([
        [2, 5],
        [3, 30],
        [2, 5],
        [3, 10],
        [2, 5],
        [3, 5],
        [4, 45],
        [2, 5],
      ]),
    );
    expect(s.over).toEqual({ 20: 2, 40: 1, 80: 0 });
    expect(s.fill).toEqual([
      ['(garbage collector)', 45],
      ['commit', 35],
    ]);
  });

  it('looks only at the last seconds when asked', () => {
    // a 100 ms start-up period, then 2 s of short ones
    const quiet = Array.from({ length: 200 }, (): [number, number][] => [
      [2, 5],
      [3, 5],
    ]).flat();
    const s = stalls(profile([[3, 100], ...quiet]), 1);
    expect(s.windowMs).toBe(1000);
    expect(s.over[20]).toBe(0);
    expect(stalls(profile([[3, 100], ...quiet])).over[80]).toBe(1);
  });
});
