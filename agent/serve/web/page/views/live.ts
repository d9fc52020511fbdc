// Readings as they arrive, for a topic filter; the newest first, the last 200 kept.
import { useEffect, useState } from 'preact/hooks';
import { LiveFeed, type FeedState, type Reading } from '../live.js';
import { Badge, html, Notice, Table, time } from '../ui.js';

const KEEP = 200;

export function LiveReadings() {
  const [filter, setFilter] = useState(new URLSearchParams(location.hash.split('?')[1]).get('topic') ?? '#');
  const [draft, setDraft] = useState(filter);
  const [readings, setReadings] = useState<Reading[]>([]);
  const [state, setState] = useState<FeedState>('connecting');
  const [paused, setPaused] = useState(false);
  useEffect(() => {
    if (paused) return;
    // Readings arriving fast are drawn once a frame, not once each.
    let arrived: Reading[] = [];
    let frame = 0;
    const feed = new LiveFeed(
      [filter],
      (r) => {
        arrived.push(r);
        frame ||= requestAnimationFrame(() => {
          const batch = arrived.reverse();
          arrived = [];
          frame = 0;
          setReadings((list) => [...batch, ...list].slice(0, KEEP));
        });
      },
      setState,
    );
    return () => {
      cancelAnimationFrame(frame);
      feed.close();
    };
  }, [filter, paused]);
  const apply = (e: Event) => {
    e.preventDefault();
    setReadings([]);
    setFilter(draft.trim() || '#');
  };
  return html`
    <form class="toolbar" onSubmit=${apply}>
      <label for="live-topic">Topic filter</label>
      <input id="live-topic" value=${draft} onInput=${(e: Event) => setDraft((e.target as HTMLInputElement).value)} placeholder="sensors/#" />
      <button type="submit">Show</button>
      <button type="button" aria-pressed=${paused} onClick=${() => setPaused(!paused)}>${paused ? 'Resume' : 'Pause'}</button>
      <span aria-live="polite">${paused ? html`<${Badge} state="paused" />` : typeof state === 'string' ? html`<${Badge} state=${state} />` : null}</span>
    </form>
    ${typeof state === 'object' ? html`<${Notice} error>${state.error}<//>` : null}
    ${
      readings.length === 0
        ? html`<p>No readings on <code>${filter}</code> since this view opened.</p>`
        : html`<${Table} caption="Live readings" head=${['Received', 'Topic', 'Payload', 'Client']}>
          ${readings.map((r) => html`<tr key=${r.seq} data-topic=${r.topic}><td>${time(r.receivedAt)}</td><td>${r.topic}</td><td><code class="payload">${JSON.stringify(r.payload)}</code></td><td>${r.clientId ?? ''}</td></tr>`)}
        <//>`
    }`;
}
