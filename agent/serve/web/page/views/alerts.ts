import { get } from '../api.js';
import { ago, Badge, html, LoadError, Section, Table, usePoll } from '../ui.js';

interface Alert {
  name: string;
  state: 'firing' | 'resolved';
  message: string;
  value?: number;
  since: string;
}

function List({ caption, alerts, empty }: { caption: string; alerts: Alert[]; empty: string }) {
  if (!alerts.length) return html`<p>${empty}</p>`;
  return html`<${Table} caption=${caption} head=${['Alert', 'State', 'Since', 'Message']}>
    ${alerts.map((a) => html`<tr><th scope="row">${a.name}</th><td><${Badge} state=${a.state} /></td><td>${ago(a.since)}</td><td>${a.message}</td></tr>`)}
  <//>`;
}

export function Alerts() {
  const { data, error } = usePoll(() => get<{ active: Alert[]; recent: Alert[] }>('/api/alerts'), 3000);
  if (!data) return html`<${LoadError} error=${error} />`;
  return html`<${LoadError} error=${error} />
    <div class="grid">
      <${Section} title="Firing now"><${List} caption="Firing now" alerts=${data.active} empty="No alert is firing." /><//>
      <${Section} title="Recent changes"><${List} caption="Recent changes" alerts=${data.recent} empty="No alert has fired since the agent started (alerts in the config)." /><//>
    </div>`;
}
