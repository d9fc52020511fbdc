// Readings refused, with every reason; operators replay them (checked again against the schemas
// now: fix the schema, then replay) or purge them.
import { useState } from 'preact/hooks';
import { del, get, post, query, type Me } from '../api.js';
import { html, LoadError, messageOf, Notice, Table, time, usePoll } from '../ui.js';

interface DeadLetter {
  id: number;
  time: number;
  topic: string;
  clientId?: string;
  payloadText?: string;
  payloadBytes?: number;
  reasons: { path: string; message: string }[];
  consumer?: string;
}
interface Replay {
  replayed: { id: number; seq: number }[];
  refused: { id: number }[];
  skipped: { id: number; why: string }[];
}

export function DeadLetters({ me }: { me: Me }) {
  const [topic, setTopic] = useState('');
  const [draft, setDraft] = useState('');
  const { data, error, reload } = usePoll(
    () => get<{ deadLetters: DeadLetter[]; next: number | null }>(`/api/dead-letters${query({ topic: topic || undefined, limit: 100 })}`),
    5000,
    [topic],
  );
  const [notice, setNotice] = useState<{ text: string; error?: boolean }>();
  const operator = me.role !== 'viewer';
  const act = async (what: () => Promise<string>) => {
    try {
      setNotice({ text: await what() });
    } catch (e) {
      setNotice({ text: messageOf(e), error: true });
    }
    reload();
  };
  const replay = (body: object) =>
    act(async () => {
      const r = await post<Replay>('/api/dead-letters/replay', body);
      return `Replayed ${r.replayed.length}; still refused ${r.refused.length}${r.skipped.length ? `; skipped ${r.skipped.length} (${r.skipped[0].why})` : ''}.`;
    });
  const purge = (id: number) => act(async () => (await del(`/api/dead-letters/${id}`), `Dead letter ${id} purged.`));
  return html`
    <form class="toolbar" onSubmit=${(e: Event) => (e.preventDefault(), setTopic(draft.trim()))}>
      <label for="dl-topic">Topic filter</label>
      <input id="dl-topic" value=${draft} placeholder="all" onInput=${(e: Event) => setDraft((e.target as HTMLInputElement).value)} />
      <button type="submit">Show</button>
      ${operator && data?.deadLetters.length ? html`<button type="button" onClick=${() => replay(topic ? { topic } : {})}>Replay all shown</button>` : null}
    </form>
    ${notice ? html`<${Notice} error=${notice.error}>${notice.text}<//>` : null}
    <${LoadError} error=${error} />
    ${
      !data
        ? null
        : data.deadLetters.length === 0
          ? html`<p>No dead letters${topic ? html` on <code>${topic}</code>` : ''}.</p>`
          : html`<${Table} caption="Dead letters" head=${['Refused', 'Topic', 'Why', 'Payload', '']}>
            ${data.deadLetters.map(
              (d) => html`<tr data-id=${d.id}>
                <td>${time(d.time)}</td>
                <td>${d.topic}${d.consumer ? html`<br /><span class="muted">by ${d.consumer}</span>` : null}</td>
                <td><ul class="reasons">${d.reasons.map((r) => html`<li><code>${r.path || '/'}</code> ${r.message}</li>`)}</ul></td>
                <td><code class="payload">${d.payloadText ?? `${d.payloadBytes ?? '?'} bytes, not text`}</code></td>
                <td class="actions">${
                  operator
                    ? html`<button type="button" onClick=${() => replay({ ids: [d.id] })} aria-label=${`Replay dead letter ${d.id}`}>Replay</button>
                      <button type="button" class="danger" onClick=${() => purge(d.id)} aria-label=${`Purge dead letter ${d.id}`}>Purge</button>`
                    : null
                }</td>
              </tr>`,
            )}
          <//>`
    }`;
}
