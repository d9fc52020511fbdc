// The broker: clients connected, messages in and out per second (from its counters, between two
// looks), refusals; the sensors watched for silence; persistent sessions (operators see them,
// admins end them).
import { useRef, useState } from 'preact/hooks';
import { del, get, type Me } from '../api.js';
import { ago, Badge, count, html, LoadError, messageOf, Notice, Section, Table, time, usePoll } from '../ui.js';

interface MqttSession {
  clientId: string;
  owner: string;
  connected: boolean;
  seenAt: string;
  expiresAt?: string;
  subscriptions: number;
  queued: number;
}

type Counters = Record<string, number>;
interface Sensor {
  sensor: string;
  state: string;
  lastSeen: string;
  readings: number;
  perMinute: number;
  refused: number;
}

export function Broker({ me }: { me: Me }) {
  const last = useRef<{ at: number; broker: Counters; accepted: number } | undefined>(undefined);
  const { data, error } = usePoll(async () => {
    const [stats, sensors] = await Promise.all([
      get<{ broker: Counters; ingest: { accepted: number; deadLettered: number } }>('/api/stats'),
      get<Sensor[]>('/api/sensors'),
    ]);
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
        ${
          data.sensors.length
            ? html`<${Table} caption="Sensors" head=${['Sensor', 'State', 'Last seen', 'Readings', 'Per minute', 'Refused']}>
              ${data.sensors.map((s) => html`<tr><th scope="row">${s.sensor}</th><td><${Badge} state=${s.state} /></td><td>${ago(s.lastSeen)}</td><td>${count(s.readings)}</td><td>${s.perMinute.toFixed(1)}</td><td>${count(s.refused)}</td></tr>`)}
            <//>`
            : html`<p>No sensors are watched for silence (health.sensors in the config).</p>`
        }
      <//>
      ${me.role === 'viewer' ? null : html`<${Sessions} admin=${me.role === 'admin'} />`}
    </div>`;
}

/** Persistent sessions: whose each is, and when it ends; an admin ends one (a squatted client id, say). */
function Sessions({ admin }: { admin: boolean }) {
  const { data, error, reload } = usePoll(() => get<MqttSession[]>('/api/mqtt/sessions'), 5000);
  const [notice, setNotice] = useState<{ text: string; error?: boolean }>();
  const end = async (id: string) => {
    if (!confirm(`End the persistent session of ${id}? Its subscriptions and queued messages go, and its client id is free.`)) return;
    try {
      await del(`/api/mqtt/sessions/${encodeURIComponent(id)}`);
      setNotice({ text: `Session of ${id} ended.` });
    } catch (e) {
      setNotice({ text: `Could not end ${id}: ${messageOf(e)}`, error: true });
    }
    reload();
  };
  return html`<${Section} title="Persistent sessions">
    <${LoadError} error=${error} />
    ${notice ? html`<${Notice} error=${notice.error}>${notice.text}<//>` : null}
    ${
      !data
        ? null
        : data.length
          ? html`<${Table} caption="Persistent sessions" head=${['Client id', 'Owner', 'State', 'Subscriptions', 'Queued', ...(admin ? [''] : [])]}>
            ${data.map(
              (s) => html`<tr><th scope="row">${s.clientId}</th><td>${s.owner || html`<span class="muted">anonymous</span>`}</td>
                <td>${s.connected ? html`<${Badge} state="connected" />` : html`away, ends ${time(s.expiresAt!)}`}</td><td>${count(s.subscriptions)}</td><td>${count(s.queued)}</td>
                ${admin ? html`<td><button type="button" class="danger" onClick=${() => end(s.clientId)} aria-label=${`End the session of ${s.clientId}`}>End</button></td>` : null}</tr>`,
            )}
          <//>`
          : html`<p>No persistent sessions (clients connecting with clean=false).</p>`
    }
  <//>`;
}
