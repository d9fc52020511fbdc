// At a glance: each part's health, the machine, the disk against retention's watermarks, what was
// written to the SD card, the clock, and alerts firing.
import { get } from '../api.js';
import { ago, Badge, bytes, count, duration, html, LoadError, Section, Table, usePoll } from '../ui.js';

interface Part {
  name: string;
  state: string;
  since: string;
  lastError?: { message: string; at: string };
}
interface Health {
  version: string;
  node: string;
  uptimeSeconds: number;
  system: {
    cpu: { percent: number; load1: number; cores: number };
    temperatureC: number | null;
    memory: { totalBytes: number; availableBytes: number };
    throttling: { now: string[]; sinceBoot: string[] } | null;
  } | null;
  clock: { synced: boolean | null; via: string; holding: boolean } | null;
}
interface Disk {
  level: string;
  freeBytes: number;
  totalBytes: number;
  watermarks: { warn: number; act: number; critical: number; reserve: number };
}
interface Stats {
  disk?: Disk;
  written: {
    total: number;
    readings: number;
    bytesPerReading: number | null;
    bytesPerDay: number | null;
    card: { bytes: number; ratedFullWrites: number; lifeYears: number | null };
  };
}
interface Alerts {
  active: { name: string; message: string; since: string }[];
}

async function load() {
  const [ready, health, stats, alerts] = await Promise.all([
    get<{ status: string; parts: Part[] }>('/health/ready', [503]),
    get<Health>('/api/health'),
    get<Stats>('/api/stats'),
    get<Alerts>('/api/alerts'),
  ]);
  return { ready, health, stats, alerts };
}

function DiskBar({ disk }: { disk: Disk }) {
  const used = disk.totalBytes - disk.freeBytes;
  const pct = (n: number) => `${((n / disk.totalBytes) * 100).toFixed(1)}%`;
  const marks = (['warn', 'act', 'critical'] as const).map((k) => ({ k, at: disk.totalBytes - disk.watermarks[k] }));
  return html`<div>
    <div class="diskbar" role="img" aria-label=${`disk ${pct(used)} used; retention acts above ${pct(marks[1].at)}`}>
      <div class=${`used ${disk.level}`} style=${{ width: pct(used) }}></div>
      ${marks.map((m) => html`<div class=${`mark ${m.k}`} style=${{ left: pct(m.at) }} title=${`${m.k}: below ${bytes(disk.watermarks[m.k])} free`}></div>`)}
    </div>
    <p>
      <${Badge} state=${disk.level} /> ${bytes(used)} used of ${bytes(disk.totalBytes)}, ${bytes(disk.freeBytes)} free. Retention warns below
      ${' ' + bytes(disk.watermarks.warn)} free, deletes below ${bytes(disk.watermarks.act)}, holds new readings (no PUBACK) below ${bytes(disk.watermarks.critical)}.
    </p>
  </div>`;
}

export function Overview() {
  const { data, error } = usePoll(load, 3000);
  if (!data) return html`<${LoadError} error=${error} />${error ? null : html`<p role="status">Loading…</p>`}`;
  const { ready, health, stats, alerts } = data;
  const sys = health.system;
  const clock = health.clock;
  return html`<${LoadError} error=${error} />
    <div class="grid">
      <${Section} title="Health" actions=${html`<${Badge} state=${ready.status} />`}>
        <${Table} caption="Parts" head=${['Part', 'State', 'Since', 'Last error']}>
          ${ready.parts.map(
            (p) =>
              html`<tr><th scope="row">${p.name}</th><td><${Badge} state=${p.state} /></td><td>${ago(p.since)}</td><td>${p.lastError ? `${p.lastError.message} (${ago(p.lastError.at)})` : ''}</td></tr>`,
          )}
        <//>
      <//>
      <${Section} title="Agent and machine">
        <dl class="facts">
          <dt>Version</dt><dd>${health.version} (Node ${health.node})</dd>
          <dt>Uptime</dt><dd>${duration(health.uptimeSeconds)}</dd>
          <dt>Temperature</dt><dd>${sys?.temperatureC === null || !sys ? 'not reported' : `${sys.temperatureC.toFixed(1)} °C`}</dd>
          <dt>Throttling</dt><dd>${!sys?.throttling ? 'not a Raspberry Pi (no firmware flags)' : sys.throttling.now.length ? html`<${Badge} state=${`error: ${sys.throttling.now.join(', ')}`} />` : html`<${Badge} state="ok" />${sys.throttling.sinceBoot.length ? ` since boot: ${sys.throttling.sinceBoot.join(', ')}` : ''}`}</dd>
          <dt>CPU</dt><dd>${sys ? `${sys.cpu.percent.toFixed(0)} % (load ${sys.cpu.load1.toFixed(2)} on ${sys.cpu.cores} cores)` : '–'}</dd>
          <dt>Memory</dt><dd>${sys ? `${bytes(sys.memory.availableBytes)} available of ${bytes(sys.memory.totalBytes)}` : '–'}</dd>
          <dt>Clock</dt><dd>${!clock ? '–' : clock.synced === null ? `cannot tell (${clock.via})` : html`<${Badge} state=${clock.synced ? 'synchronised' : 'not synchronised'} /> via ${clock.via}${clock.holding ? '; sinks wait for it' : ''}`}</dd>
        </dl>
      <//>
      <${Section} title="Disk">
        ${stats.disk ? html`<${DiskBar} disk=${stats.disk} />` : html`<p>Retention is off: the disk is not watched.</p>`}
        <p>Written to the SD card since start: <strong>${bytes(stats.written.total)}</strong> for ${count(stats.written.readings)} readings${stats.written.bytesPerReading ? ` (${bytes(stats.written.bytesPerReading)} a reading)` : ''}.</p>
        ${
          stats.written.bytesPerDay !== null
            ? html`<p>At the current rate: <strong>${bytes(stats.written.bytesPerDay)} a day</strong>; a ${bytes(stats.written.card.bytes)} card rated ${count(stats.written.card.ratedFullWrites)} full writes lasts <strong>${stats.written.card.lifeYears === null ? 'unknown' : `${stats.written.card.lifeYears} years`}</strong> by these writes alone.</p>`
            : html`<p>The rate a day is shown once the agent has run a minute.</p>`
        }
      <//>
      <${Section} title="Active alerts" actions=${html`<a href="#/alerts">All alerts</a>`}>
        ${
          alerts.active.length
            ? html`<ul class="alerts">${alerts.active.map((a) => html`<li><${Badge} state="firing" /> <strong>${a.name}</strong>: ${a.message} (${ago(a.since)})</li>`)}</ul>`
            : html`<p>None.</p>`
        }
      <//>
    </div>`;
}
