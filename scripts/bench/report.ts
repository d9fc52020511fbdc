/** One line of a benchmark table: our figure next to a baseline measured in the same run. */
export interface Row {
  name: string;
  /** What the baseline is (bare Aedes, Mosquitto, ...); the table's title says it where absent. */
  baselineName?: string;
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
  for (const r of rows)
    figures.push({
      bench: current,
      name: r.name,
      ours: fmt(r.value),
      baselines: `${r.baselineName ?? 'baseline'} ${fmt(r.baseline)}`,
      ratio: `${ratio(r).toFixed(2)}x`,
      target: `>= ${r.target}x`,
      result: ratio(r) >= r.target ? 'met' : 'missed',
    });
  const lines = [
    ['case', 'baseline', 'edge-agent', 'ratio', 'target', 'result'],
    ...rows.map((r) => [
      r.baselineName ? `${r.name} (vs ${r.baselineName})` : r.name,
      fmt(r.baseline),
      fmt(r.value),
      `${ratio(r).toFixed(2)}x`,
      `>= ${r.target}x`,
      ratio(r) >= r.target ? 'ok' : 'BELOW',
    ]),
  ];
  printGrid(title, lines);
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
  for (const r of rows)
    figures.push({
      bench: current,
      name: r.name,
      ours: cell(r.value, r.unit),
      baselines: baselines
        .map((b, i) => (r.baselines?.[i] === undefined ? '' : `${b} ${cell(r.baselines[i], r.unit)}`))
        .filter(Boolean)
        .join('; '),
      ratio: '',
      target: r.max === Infinity ? '' : `<= ${fmt(r.max)} ${r.unit}`,
      result: r.max === Infinity ? '' : r.value <= r.max ? 'met' : 'missed',
    });
  const lines = [
    ['metric', 'edge-agent', ...baselines, 'target', 'result'],
    ...rows.map((r) => [
      r.name,
      cell(r.value, r.unit),
      ...baselines.map((_, i) => cell(r.baselines?.[i], r.unit)),
      ...(r.max === Infinity ? ['-', ''] : [`<= ${fmt(r.max)} ${r.unit}`, r.value <= r.max ? 'ok' : 'ABOVE']),
    ]),
  ];
  printGrid(title, lines);
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

// ---- the report of a run: every table as it was printed, and one summary ----

/** One figure of the summary: ours, the baselines measured in the same run, the target, met or not. */
export interface Figure {
  bench: string;
  name: string;
  ours: string;
  baselines: string;
  ratio: string;
  target: string;
  result: 'met' | 'missed' | '';
}

const figures: Figure[] = [];
/** Each benchmark's output, for the written report. */
const sections = new Map<string, string[]>();
let current = '';

/** The benchmark whose tables and notes come next. */
export function startSection(bench: string): void {
  current = bench;
  sections.set(bench, []);
}

/** A line of text beside the tables (where the time goes, how a figure was measured). */
export function note(text: string): void {
  console.log(text);
  sections.get(current)?.push(text);
}

/** A table of text, printed and kept for the report as it is. */
export function printGrid(title: string, lines: string[][]): void {
  const widths = lines[0].map((_, i) => Math.max(...lines.map((l) => l[i].length)));
  const text = lines.map((l) => l.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  '));
  console.log(`\n${title}`);
  for (const l of text) console.log(l);
  sections.get(current)?.push('', title, '', '```', ...text, '```');
}

export function summaryFigures(): readonly Figure[] {
  return figures;
}

/** The one table of a run: every figure with a target, and those shown beside them. */
export function summaryTable(): string[][] {
  return [
    ['benchmark', 'figure', 'edge-agent', 'baselines (same run)', 'ratio', 'target', 'result'],
    ...figures.map((f) => [f.bench, f.name, f.ours, f.baselines, f.ratio, f.target, f.result]),
  ];
}

export function printSummary(): void {
  const met = figures.filter((f) => f.result === 'met').length;
  const missed = figures.filter((f) => f.result === 'missed').length;
  const lines = summaryTable();
  const widths = lines[0].map((_, i) => Math.max(...lines.map((l) => l[i].length)));
  console.log(`\nsummary: ${met} targets met, ${missed} missed`);
  for (const l of lines) console.log(l.map((c, i) => c.padEnd(widths[i])).join('  '));
}

const mdRow = (cells: string[]) => `| ${cells.map((c) => c.replaceAll('|', '\\|')).join(' | ')} |`;

/** The report as Markdown: the machine, the versions, the command, the summary, then each benchmark's output. */
export function markdownReport(meta: { command: string; date: string; machine: string[]; versions: string[] }): string {
  const table = summaryTable();
  const out = [
    '# Performance',
    '',
    `Measured by \`${meta.command}\` on ${meta.date}. Every baseline was started by the benchmark and`,
    'measured in the same run, on the same machine, one after the other (ratios, not absolute figures, are',
    'what carries over to other machines; a Raspberry Pi is several times slower than this one in both).',
    '',
    '## Machine',
    '',
    ...meta.machine.map((m) => `- ${m}`),
    '',
    '## Versions',
    '',
    ...meta.versions.map((v) => `- ${v}`),
    '',
    '## Summary',
    '',
    `${figures.filter((f) => f.result === 'met').length} targets met, ${figures.filter((f) => f.result === 'missed').length} missed. Where the time goes`,
    'in the missed ones, from CPU profiles: [where-time-goes.md](where-time-goes.md).',
    '',
    mdRow(table[0]),
    mdRow(table[0].map(() => '---')),
    ...table.slice(1).map(mdRow),
  ];
  for (const [bench, lines] of sections) out.push('', `## ${bench}`, ...lines);
  return `${out.join('\n')}\n`;
}
