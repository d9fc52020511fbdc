/** One line of a benchmark table: our figure next to a baseline measured in the same run. */
export interface Row {
  name: string;
  baseline: number;
  value: number;
  /** Required ratio value/baseline (or baseline/value when lower is better). */
  target: number;
  higherIsBetter: boolean;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export function ratio(row: Row): number {
  return row.higherIsBetter ? row.value / row.baseline : row.baseline / row.value;
}

const fmt = (n: number) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2));

export function printTable(title: string, rows: Row[]): void {
  const lines = [
    ['case', 'baseline', 'edge-agent', 'ratio', 'target', 'result'],
    ...rows.map((r) => [
      r.name,
      fmt(r.baseline),
      fmt(r.value),
      `${ratio(r).toFixed(2)}x`,
      `>= ${r.target}x`,
      ratio(r) >= r.target ? 'ok' : 'BELOW',
    ]),
  ];
  const widths = lines[0].map((_, i) => Math.max(...lines.map((l) => l[i].length)));
  console.log(`\n${title}`);
  for (const l of lines) console.log(l.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  '));
}

/** A figure with an absolute target (a latency, a size), not a ratio. */
export interface Limit {
  name: string;
  value: number;
  unit: string;
  /** The value must be at most this (Infinity: a figure shown without a target). */
  max: number;
  /** Figures of the baselines named in printLimits, measured in the same run (for comparison, no target). */
  baselines?: (number | undefined)[];
}

/** `baselines`: names of the columns of each row's `baselines`, between ours and the target. */
export function printLimits(title: string, rows: Limit[], baselines: string[] = []): void {
  const cell = (n: number | undefined, unit: string) => (n === undefined ? '-' : `${fmt(n)} ${unit}`);
  const lines = [
    ['metric', 'edge-agent', ...baselines, 'target', 'result'],
    ...rows.map((r) => [
      r.name,
      cell(r.value, r.unit),
      ...baselines.map((_, i) => cell(r.baselines?.[i], r.unit)),
      ...(r.max === Infinity ? ['-', ''] : [`<= ${fmt(r.max)} ${r.unit}`, r.value <= r.max ? 'ok' : 'ABOVE']),
    ]),
  ];
  const widths = lines[0].map((_, i) => Math.max(...lines.map((l) => l[i].length)));
  console.log(`\n${title}`);
  for (const l of lines) console.log(l.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  '));
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
