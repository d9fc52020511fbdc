// Each sink: its state, how far behind, how long to catch up, its last error; operators can cut a
// failing sink's backoff short.
import { useState } from 'preact/hooks';
import { get, post, type Me } from '../api.js';
import { ago, Badge, bytes, count, duration, html, LoadError, messageOf, Notice, Table, usePoll } from '../ui.js';

interface SinkStatus {
  name: string;
  type: string;
  state: string;
  since: string;
  lastError?: { message: string; at: string };
  lagRecords: number;
  oldestUnsentMs: number;
  recordsPerSec: number;
  drainEtaSec: number | null;
  waitingForClock: boolean;
  sent: { records: number; bytesOut: number };
  failures: number;
  deadLettered: number;
}

export function Sync({ me }: { me: Me }) {
  const { data, error, reload } = usePoll(() => get<SinkStatus[]>('/api/sync'), 2000);
  const [notice, setNotice] = useState<{ text: string; error?: boolean }>();
  const retry = async (name: string) => {
    try {
      const r = await post<{ wasFailing: boolean }>(`/api/sync/${encodeURIComponent(name)}/retry`);
      setNotice({ text: r.wasFailing ? `Retrying ${name} now.` : `${name} was not failing; nothing to retry.` });
      setTimeout(reload, 300);
    } catch (e) {
      setNotice({ text: `Retry of ${name} failed: ${messageOf(e)}`, error: true });
    }
  };
  if (!data) return html`<${LoadError} error=${error} />`;
  if (!data.length) return html`<p>No sinks are configured: readings stay on this device (sinks in the config).</p>`;
  const operator = me.role !== 'viewer';
  return html`<${LoadError} error=${error} />
    ${notice ? html`<${Notice} error=${notice.error}>${notice.text}<//>` : null}
    <${Table} caption="Sinks" head=${['Sink', 'State', 'Behind', 'Oldest unsent', 'Rate', 'Time to drain', 'Sent', 'Last error', '']}>
      ${data.map(
        (s) => html`<tr data-sink=${s.name}>
          <th scope="row">${s.name} <span class="muted">${s.type}</span></th>
          <td><${Badge} state=${s.waitingForClock ? 'holding for clock' : s.state} /> <span class="muted">${ago(s.since)}</span></td>
          <td data-testid="lag">${count(s.lagRecords)}</td>
          <td>${s.oldestUnsentMs ? duration(s.oldestUnsentMs / 1000) : '–'}</td>
          <td>${s.recordsPerSec.toFixed(1)} /s</td>
          <td>${s.lagRecords === 0 ? 'caught up' : s.drainEtaSec === null ? 'unknown' : s.state === 'ok' ? duration(s.drainEtaSec) : `${duration(s.drainEtaSec)} once back`}</td>
          <td>${count(s.sent.records)} (${bytes(s.sent.bytesOut)})</td>
          <td class=${s.state === 'ok' ? 'muted' : 'error-text'} data-testid="last-error">${s.lastError ? `${s.state === 'ok' ? 'past, ' : ''}${ago(s.lastError.at)}: ${s.lastError.message}` : ''}</td>
          <td>${operator ? html`<button type="button" onClick=${() => retry(s.name)} aria-label=${`Retry now: ${s.name}`}>Retry now</button>` : null}</td>
        </tr>`,
      )}
    <//>`;
}
