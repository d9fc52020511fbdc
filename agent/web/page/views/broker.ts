// The broker: clients connected, messages in and out per second (from its counters, between two
// looks), refusals; and the sensors watched for silence.
import { useRef } from 'preact/hooks';
import { get } from '../api.js';
import { ago, Badge, count, html, LoadError, Section, Table, usePoll } from '../ui.js';

type Counters = Record<string, number>;
interface Sensor {
  sensor: string;
  state: string;
  lastSeen: string;
  readings: number;
  perMinute: number;
  refused: number;
}

export function Broker() {
  const last = useRef<{ at: number; broker: Counters; accepted: number } | undefined>(undefined);
  const { data, error } = usePoll(async () => {
    const [stats, sensors] = await Promise.all([get<{ broker: Counters; ingest: { accepted: number; deadLettered: number } }>('/api/stats'), get<Sensor[]>('/api/sensors')]);
    const now = performance.now();
    const before = last.current;
    const per = (a: number, b: number | undefined) => (before && b !== undefined ? ((a - b) * 1000) / (now - before.at) : null);
    const rates = {
      received: per(stats.broker.messagesReceived, before?.broker.messagesReceived),
      sent: per(stats.broker.messagesSent, before?.broker.messagesSent),
      accepted: per(stats.ingest.accepted, before?.accepted),
    };
    last.current = { at: now, broker: stats.broker, accepted: stats.ingest.accepted };
    return { stats, sensors, rates };
  }, 2000);
  if (!data) return html`<${LoadError} error=${error} />`;
  const { broker } = data.stats;
  const rate = (r: number | null) => (r === null ? 'measuring…' : `${r.toFixed(1)} /s`);
  return html`<${LoadError} error=${error} />
    <div class="grid">
      <${Section} title="Clients and messages">
        <dl class="facts">
          <dt>Clients connected</dt><dd data-testid="clients">${count(broker.clientsConnected)}</dd>
          <dt>Messages in</dt><dd>${rate(data.rates.received)} (${count(broker.messagesReceived)} since start)</dd>
          <dt>Messages out</dt><dd>${rate(data.rates.sent)} (${count(broker.messagesSent)} since start)</dd>
          <dt>Readings accepted</dt><dd>${rate(data.rates.accepted)} (${count(data.stats.ingest.accepted)} since start; ${count(data.stats.ingest.deadLettered)} dead-lettered)</dd>
        </dl>
      <//>
      <${Section} title="Refused">
        <dl class="facts">
          <dt>Failed logins</dt><dd>${count(broker.authFailures)}</dd>
          <dt>Connections refused</dt><dd>${count(broker.connectionsRefused)}</dd>
          <dt>Publishes denied by ACL</dt><dd>${count(broker.publishDenied)}</dd>
          <dt>Subscriptions denied</dt><dd>${count(broker.subscribeDenied)}</dd>
          <dt>Malformed packets</dt><dd>${count(broker.malformedPackets)}</dd>
          <dt>Queued messages dropped</dt><dd>${count(broker.queueDropped)}</dd>
        </dl>
      <//>
      <${Section} title="Sensors">
        ${data.sensors.length
          ? html`<${Table} caption="Sensors" head=${['Sensor', 'State', 'Last seen', 'Readings', 'Per minute', 'Refused']}>
              ${data.sensors.map((s) => html`<tr><th scope="row">${s.sensor}</th><td><${Badge} state=${s.state} /></td><td>${ago(s.lastSeen)}</td><td>${count(s.readings)}</td><td>${s.perMinute.toFixed(1)}</td><td>${count(s.refused)}</td></tr>`)}
            <//>`
          : html`<p>No sensors are watched for silence (health.sensors in the config).</p>`}
      <//>
    </div>`;
}
