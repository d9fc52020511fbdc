// Summary statistics kept per series, field and bucket. Mean and spread are kept as Welford's mean
// and M2 (sum of squared deviations), merged with Chan's formula: a sum of squares would lose the
// spread of large values close together (temperatures in kelvin, timestamps) to cancellation.

export interface Stats {
  count: number;
  min: number;
  max: number;
  sum: number;
  mean: number;
  m2: number;
  /** The value of the reading with the highest seq, and that seq. */
  last: number;
  lastSeq: number;
}

export const single = (value: number, seq: number): Stats => ({
  count: 1,
  min: value,
  max: value,
  sum: value,
  mean: value,
  m2: 0,
  last: value,
  lastSeq: seq,
});

/**
 * `mean` moved toward `other` by `weight` (0..1). Welford's and Chan's steps scale the difference of
 * the two, which overflows for values near Number.MAX_VALUE (1e308 and 50 merged with a count of 2:
 * Infinity, and the next value made it NaN, which the rollups' NOT NULL columns refused, so the
 * rollups dead-lettered a reading the store kept); a weighted mean of finite means stays finite.
 */
function towards(mean: number, other: number, weight: number): number {
  const stepped = mean + (other - mean) * weight;
  return Number.isFinite(stepped) ? stepped : mean * (1 - weight) + other * weight;
}

/** Add one value in place (Welford's update): the hot path, with no allocation. */
export function add(s: Stats, value: number, seq: number): void {
  s.count++;
  const delta = value - s.mean;
  s.mean = towards(s.mean, value, 1 / s.count);
  s.m2 += delta * (value - s.mean);
  s.sum += value;
  if (value < s.min) s.min = value;
  if (value > s.max) s.max = value;
  if (seq > s.lastSeq) {
    s.last = value;
    s.lastSeq = seq;
  }
}

/** The statistics of both sets together; order does not matter. */
export function merge(a: Stats, b: Stats): Stats {
  const count = a.count + b.count;
  const delta = b.mean - a.mean;
  const later = b.lastSeq > a.lastSeq ? b : a;
  return {
    count,
    min: Math.min(a.min, b.min),
    max: Math.max(a.max, b.max),
    sum: a.sum + b.sum,
    mean: towards(a.mean, b.mean, b.count / count),
    m2: a.m2 + b.m2 + (delta * delta * a.count * b.count) / count,
    last: later.last,
    lastSeq: later.lastSeq,
  };
}

/** Sample standard deviation (as SQL's stddev and InfluxQL's STDDEV); null for a single value. */
export const stddev = (s: Pick<Stats, 'count' | 'm2'>): number | null =>
  s.count < 2 ? null : Math.sqrt(Math.max(0, s.m2) / (s.count - 1));
