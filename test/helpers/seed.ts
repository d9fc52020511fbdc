// Random instants a crash test can replay: the seed comes from CRASH_SEED, else the clock, and the
// test names it in its failure messages.

/** mulberry32: a small seeded PRNG, numbers in [0, 1). */
export function seededRandom(seed = Number(process.env.CRASH_SEED ?? Date.now() % 2 ** 31)): { seed: number; next(): number } {
  let state = seed >>> 0;
  return {
    seed,
    next() {
      state = (state + 0x6d2b79f5) >>> 0;
      let t = state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
    },
  };
}
