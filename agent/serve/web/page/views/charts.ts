// Fields over time: history from the aggregate API (one bucket width per time range), then live
// points from the WebSocket as they arrive. Drag across the chart to zoom; "Reset zoom" undoes it.
// The schema's numeric fields are drawn at first, counters left off; one axis per unit, and each
// bucket's min-max as a band around its mean.
import uPlot from 'uplot';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { get, query } from '../api.js';
import { LiveFeed, numberAt, type FeedState, type Reading } from '../live.js';
import { Badge, html, LoadError, messageOf, time } from '../ui.js';

interface Series {
  topic: string;
  tags?: Record<string, string>;
  field: string;
  unit?: string;
  counter?: boolean;
  points: { start: number; mean: number | null; min?: number | null; max?: number | null }[];
}

const RANGES = [
  { label: 'Last 15 minutes', ms: 15 * 60_000, bucket: '1m' },
  { label: 'Last hour', ms: 3600_000, bucket: '1m' },
  { label: 'Last 6 hours', ms: 6 * 3600_000, bucket: '5m' },
  { label: 'Last 24 hours', ms: 86400_000, bucket: '15m' },
  { label: 'Last 7 days', ms: 7 * 86400_000, bucket: '1h' },
];
const COLOURS = ['#1f6fb2', '#c2410c', '#15803d', '#7e22ce', '#b91c1c', '#0f766e', '#a16207', '#334155'];
const MAX_SHOWN = 8;
const MAX_LIVE = 5000;

const keyOf = (s: Pick<Series, 'topic' | 'tags' | 'field'>) =>
  `${s.topic}${
    s.tags && Object.keys(s.tags).length
      ? ` {${Object.entries(s.tags)
          .map(([k, v]) => `${k}=${v}`)
          .join(', ')}}`
      : ''
  } · ${s.field}`;

/** The live reading's value for a series: same topic, same tags, the field a number. */
function valueFor(s: Series, r: Reading): number | undefined {
  if (r.topic !== s.topic) return undefined;
  for (const [k, v] of Object.entries(s.tags ?? {})) if (String((r.payload as Record<string, unknown>)?.[k]) !== v) return undefined;
  return numberAt(r.payload, s.field);
}

const labelOf = (s: Series) => `${keyOf(s)}${s.unit ? ` (${s.unit})` : ''}`;

/**
 * Rows for uPlot: one time axis (s); per series its mean, then its bucket min and max (for the
 * band; live points have none); null where a series has no point.
 */
function aligned(series: Series[], live: Map<string, [number, number][]>): uPlot.AlignedData {
  const times = new Set<number>();
  const columns = series.map((s) => {
    const mean = new Map<number, number | null>();
    const min = new Map<number, number | null>();
    const max = new Map<number, number | null>();
    for (const p of s.points) {
      mean.set(p.start / 1000, p.mean);
      min.set(p.start / 1000, p.min ?? null);
      max.set(p.start / 1000, p.max ?? null);
    }
    for (const [t, v] of live.get(keyOf(s)) ?? []) mean.set(t, v);
    for (const t of mean.keys()) times.add(t);
    return [mean, min, max];
  });
  const xs = [...times].sort((a, b) => a - b);
  return [xs, ...columns.flatMap((cols) => cols.map((m) => xs.map((t) => m.get(t) ?? null)))] as uPlot.AlignedData;
}

/** The series' scales: one per unit ('' for none), each with its axis, left and right in turn. */
function unitsOf(series: Series[]): string[] {
  return [...new Set(series.map((s) => s.unit ?? ''))];
}

function Chart({ series, live, version }: { series: Series[]; live: Map<string, [number, number][]>; version: number }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | undefined>(undefined);
  const [span, setSpan] = useState<[number, number]>();
  useEffect(() => {
    const el = box.current!;
    const opts: uPlot.Options = {
      width: el.clientWidth,
      height: Math.min(360, Math.max(220, Math.round(el.clientWidth * 0.5))),
      cursor: { drag: { x: true, y: false } },
      // One point (a single bucket) still gets a time axis: a minute either side.
      scales: { x: { time: true, range: (_u, min, max) => (min === max ? [min - 60, max + 60] : [min, max]) } },
      series: [
        {},
        ...series.flatMap((s, i) => {
          const colour = COLOURS[i % COLOURS.length];
          const scale = `unit:${s.unit ?? ''}`;
          return [
            { label: labelOf(s), stroke: colour, width: 2, spanGaps: true, points: { show: false }, scale },
            { label: `${keyOf(s)} min`, stroke: 'transparent', width: 0, spanGaps: true, points: { show: false }, scale },
            { label: `${keyOf(s)} max`, stroke: 'transparent', width: 0, spanGaps: true, points: { show: false }, scale },
          ];
        }),
      ],
      bands: series.map((s, i) => ({ series: [3 * i + 3, 3 * i + 2] as [number, number], fill: `${COLOURS[i % COLOURS.length]}22` })),
      axes: [
        {},
        ...unitsOf(series).map((u, i) => ({
          scale: `unit:${u}`,
          label: u || undefined,
          side: i % 2 === 0 ? 3 : 1,
          size: 60,
          grid: { show: i === 0 },
        })),
      ],
      hooks: { setScale: [(u, key) => key === 'x' && setSpan([u.scales.x.min!, u.scales.x.max!])] },
    };
    const p = new uPlot(opts, aligned(series, live), el);
    // The legend names each field once: the band's min and max rows are not shown.
    p.root.querySelectorAll<HTMLElement>('.u-legend .u-series').forEach((row, i) => {
      if (i > 0 && (i - 1) % 3 !== 0) row.style.display = 'none';
    });
    plot.current = p;
    const resize = new ResizeObserver(() => p.setSize({ width: el.clientWidth, height: opts.height! }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      p.destroy();
    };
  }, [series]);
  const drawn = useRef(version);
  useEffect(() => {
    const p = plot.current;
    if (!p || drawn.current === version) return;
    drawn.current = version;
    // New live points: follow them while the chart shows the latest; keep a zoom the user chose.
    const xs = p.data[0];
    const following = !xs.length || p.scales.x.max === undefined || p.scales.x.max >= xs[xs.length - 1];
    p.setData(aligned(series, live), following);
  }, [version]);
  const reset = () => {
    const p = plot.current;
    const xs = p?.data[0];
    if (p && xs?.length) p.setScale('x', { min: xs[0], max: xs[xs.length - 1] });
  };
  const points = series.reduce((n, s) => n + s.points.length + (live.get(keyOf(s))?.length ?? 0), 0);
  return html`<div class="chart-box">
    <div ref=${box} class="chart" role="img" aria-label=${`chart of ${series.map(labelOf).join(', ')}: ${points} points`} data-points=${points} data-axes=${unitsOf(series).length}></div>
    <p class="toolbar"><span data-testid="chart-span">${span ? `${time(span[0] * 1000)} – ${time(span[1] * 1000)}` : ''}</span><button type="button" onClick=${reset}>Reset zoom</button></p>
  </div>`;
}

/** Drawn at first: fields that measure something (counters off), those with a unit first, four at most. */
function firstShown(series: Series[]): string[] {
  const measures = series.filter((s) => !s.counter);
  return [...measures.filter((s) => s.unit), ...measures.filter((s) => !s.unit)].slice(0, 4).map(keyOf);
}

export function Charts() {
  const params = new URLSearchParams(location.hash.split('?')[1]);
  const [topic, setTopic] = useState(params.get('topic') ?? '#');
  const [draft, setDraft] = useState(topic);
  const [range, setRange] = useState(1);
  const [series, setSeries] = useState<Series[]>();
  const [chosen, setChosen] = useState<string[]>([]);
  const [error, setError] = useState<string>();
  const [feed, setFeed] = useState<FeedState>('connecting');
  const live = useRef(new Map<string, [number, number][]>());
  const [version, setVersion] = useState(0);

  useEffect(() => {
    const r = RANGES[range];
    setSeries(undefined);
    live.current = new Map();
    get<{ series: Series[] }>(
      `/api/data/aggregate${query({ topic, bucket: r.bucket, from: String(Date.now() - r.ms), stats: ['mean', 'min', 'max'] })}`,
    ).then(
      (a) => {
        setError(undefined);
        setSeries(a.series);
        setChosen((c) => (c.some((k) => a.series.some((s) => keyOf(s) === k)) ? c : firstShown(a.series)));
      },
      (e: unknown) => setError(messageOf(e)),
    );
  }, [topic, range]);

  const shown = useMemo(() => (series ?? []).filter((s) => chosen.includes(keyOf(s))), [series, chosen]);
  useEffect(() => {
    if (!shown.length) return;
    let pending = false;
    const f = new LiveFeed(
      [topic],
      (r: Reading) => {
        for (const s of shown) {
          const v = valueFor(s, r);
          if (v === undefined) continue;
          const list = live.current.get(keyOf(s)) ?? [];
          list.push([r.receivedAt / 1000, v]);
          if (list.length > MAX_LIVE) list.shift();
          live.current.set(keyOf(s), list);
          if (!pending) {
            pending = true;
            requestAnimationFrame(() => ((pending = false), setVersion((n) => n + 1)));
          }
        }
      },
      setFeed,
    );
    return () => f.close();
  }, [shown]);

  const toggle = (k: string) => setChosen((c) => (c.includes(k) ? c.filter((x) => x !== k) : c.length < MAX_SHOWN ? [...c, k] : c));
  return html`
    <form class="toolbar" onSubmit=${(e: Event) => (e.preventDefault(), setTopic(draft.trim() || '#'))}>
      <label for="chart-topic">Topic filter</label>
      <input id="chart-topic" value=${draft} onInput=${(e: Event) => setDraft((e.target as HTMLInputElement).value)} />
      <label for="chart-range">Time range</label>
      <select id="chart-range" value=${range} onChange=${(e: Event) => setRange(Number((e.target as HTMLSelectElement).value))}>
        ${RANGES.map((r, i) => html`<option value=${i}>${r.label}</option>`)}
      </select>
      <button type="submit">Show</button>
      ${shown.length ? html`<span aria-live="polite">${typeof feed === 'string' ? html`<${Badge} state=${feed} />` : feed.error}</span>` : null}
    </form>
    <${LoadError} error=${error} />
    ${
      !series
        ? error
          ? null
          : html`<p role="status">Loading…</p>`
        : series.length === 0
          ? html`<p>No numeric fields stored on <code>${topic}</code> in this time range.</p>`
          : html`${shown.length ? html`<${Chart} series=${shown} live=${live.current} version=${version} />` : html`<p>Choose a field to draw.</p>`}
            <fieldset class="series">
              <legend>Fields (up to ${MAX_SHOWN})</legend>
              ${series.map((s) => {
                const k = keyOf(s);
                return html`<label class="check"><input type="checkbox" checked=${chosen.includes(k)} onChange=${() => toggle(k)} /> ${labelOf(s)}${s.counter ? html` <span class="muted">counter</span>` : null}</label>`;
              })}
            </fieldset>`
    }`;
}
