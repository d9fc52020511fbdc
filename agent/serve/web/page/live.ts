// Live readings over the API's WebSocket (/ws): subscribe to topic filters; reconnects with a
// growing pause, getting a new access token first when the old one has expired.
import { get } from './api.js';

export interface Reading {
  seq: number;
  topic: string;
  receivedAt: number;
  payload: unknown;
  clientId?: string;
  schema?: string;
}

export type FeedState = 'connecting' | 'live' | 'reconnecting' | { error: string };

export class LiveFeed {
  private socket?: WebSocket;
  private closed = false;
  private pauseMs = 1000;

  constructor(
    private readonly filters: string[],
    private readonly onReading: (r: Reading) => void,
    private readonly onState: (s: FeedState) => void,
  ) {
    this.open();
  }

  private open(): void {
    this.onState('connecting');
    const socket = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
    this.socket = socket;
    socket.onopen = () => socket.send(JSON.stringify({ type: 'subscribe', topics: this.filters }));
    socket.onmessage = (e) => {
      const m = JSON.parse(String(e.data)) as { type: string; reading?: Reading; message?: string };
      if (m.type === 'reading' && m.reading) this.onReading(m.reading);
      else if (m.type === 'subscribed') {
        this.pauseMs = 1000;
        this.onState('live');
      } else if (m.type === 'error') this.onState({ error: m.message ?? 'refused' });
    };
    socket.onclose = () => {
      if (this.closed) return;
      this.onState('reconnecting');
      setTimeout(() => {
        if (this.closed) return;
        // The access token may have expired: asking who we are renews it (or ends the session).
        void get('/api/auth/me')
          .catch(() => undefined)
          .then(() => {
            if (!this.closed) this.open();
          });
      }, this.pauseMs);
      this.pauseMs = Math.min(this.pauseMs * 2, 30_000);
    };
  }

  close(): void {
    this.closed = true;
    this.socket?.close();
  }
}

/** A field of a payload by dotted path, when it is a number. */
export function numberAt(payload: unknown, path: string): number | undefined {
  let v: unknown = payload;
  for (const k of path.split('.')) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined;
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}
