// Sliced work shares the event loop: one slice a turn whoever it belongs to, jobs interleaved first
// come first served, a slice returning false ends its job.
import { describe, expect, it } from 'vitest';
import { inSlices } from '../../agent/lib/slices.js';

describe('inSlices', () => {
  it('runs one slice per turn of the event loop across concurrent jobs, interleaved', async () => {
    let turn = 0;
    let ticking = true;
    const tick = () => {
      turn++;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    const ran: { job: string; turn: number; from: number }[] = [];
    const job = (name: string) => inSlices(3000, (from) => void ran.push({ job: name, turn, from }), 1000);
    await Promise.all([job('a'), job('b'), job('c')]);
    ticking = false;
    expect(ran).toHaveLength(9);
    // No two slices in the same turn: ten jobs at once hold a turn no longer than one does.
    expect(new Set(ran.map((r) => r.turn)).size).toBe(9);
    // Every job went on while the others did: none finished before the others began.
    const last = (name: string) => ran.map((r) => r.job).lastIndexOf(name);
    const first = (name: string) => ran.findIndex((r) => r.job === name);
    expect(Math.min(last('a'), last('b'), last('c'))).toBeGreaterThan(Math.max(first('a'), first('b'), first('c')));
    expect(ran.filter((r) => r.job === 'b').map((r) => r.from)).toEqual([0, 1000, 2000]);
  });

  it('with nothing left to do, nothing is scheduled: the queue does not turn on its own', async () => {
    const immediates = () => process.getActiveResourcesInfo().filter((r) => r === 'Immediate').length;
    const job = inSlices(2000, () => {}, 500);
    expect(immediates()).toBeGreaterThan(0); // the control: a job waiting has its turn scheduled
    await job;
    await new Promise((r) => setImmediate(r)); // the pump's last turn, if any, has run
    expect(immediates()).toBe(0);
  });

  it('a job alone starts at once; a slice returning false ends it', async () => {
    const seen: number[] = [];
    const done = inSlices(5000, (from) => (seen.push(from), from < 2000), 1000);
    expect(seen).toEqual([0]); // the first slice ran before inSlices returned
    await done;
    expect(seen).toEqual([0, 1000, 2000]);
  });
});
