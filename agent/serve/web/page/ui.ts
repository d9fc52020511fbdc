// What every view uses: markup (htm over Preact), polling, formatting, state badges, notices.
import { h, type ComponentChildren } from 'preact';
import { useCallback, useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import htm from 'htm';
import { ApiError } from './api.js';

export const html = htm.bind(h);

export interface Polled<T> {
  data: T | undefined;
  error: string | undefined;
  reload: () => void;
}

/** Load now and every `ms` while the view is shown (and the tab visible). */
export function usePoll<T>(load: () => Promise<T>, ms: number, deps: unknown[] = []): Polled<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<string>();
  const loadRef = useRef(load);
  loadRef.current = load;
  const run = useCallback(() => {
    loadRef.current().then(
      (d) => {
        setData(d);
        setError(undefined);
      },
      (e: unknown) => setError(messageOf(e)),
    );
  }, []);
  useEffect(() => {
    run();
    const timer = setInterval(() => document.visibilityState === 'visible' && run(), ms);
    return () => clearInterval(timer);
  }, deps);
  return { data, error, reload: run };
}

export const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** The problems an API error lists (validation details, schema problems, refused readings), as lines. */
export function problemsOf(e: unknown): string[] {
  if (!(e instanceof ApiError) || !Array.isArray(e.details)) return [];
  return e.details.map((d: unknown) => {
    if (typeof d === 'string') return d;
    const o = d as { parameter?: string; message?: string; reasons?: { path: string; message: string }[] };
    if (o.reasons) return o.reasons.map((r) => `${r.path} ${r.message}`).join('; ');
    return [o.parameter, o.message].filter(Boolean).join(': ');
  });
}

const UNITS = ['B', 'kB', 'MB', 'GB', 'TB'];
export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  let i = 0;
  while (Math.abs(n) >= 1000 && i < UNITS.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n.toFixed(i && n < 10 ? 1 : 0)} ${UNITS[i]}`;
}

export function duration(sec: number | null | undefined): string {
  if (sec === null || sec === undefined) return '–';
  sec = Math.round(sec);
  if (sec < 60) return `${sec} s`;
  if (sec < 3600) return `${Math.floor(sec / 60)} min ${sec % 60} s`;
  if (sec < 86400) return `${Math.floor(sec / 3600)} h ${Math.floor((sec % 3600) / 60)} min`;
  return `${Math.floor(sec / 86400)} d ${Math.floor((sec % 86400) / 3600)} h`;
}

export const time = (ms: number | string) => new Date(ms).toLocaleString();
export const ago = (iso: string) => `${duration((Date.now() - Date.parse(iso)) / 1000)} ago`;
export const count = (n: number | null | undefined) => (n === null || n === undefined ? '–' : n.toLocaleString());

/** ok, starting, retrying, stuck, down, refusing: ...: colour by how bad. */
function kindOf(state: string): 'good' | 'warn' | 'bad' | 'info' {
  if (/^(ok|ready|live|resolved|synchronised)$/.test(state)) return 'good';
  if (/^(retrying|starting|degraded|warn|act|connecting|reconnecting|holding)/.test(state)) return 'warn';
  if (/^(stuck|down|refusing|not ready|critical|firing|error|reserve)/.test(state)) return 'bad';
  return 'info';
}

export function Badge({ state }: { state: string }) {
  return html`<span class=${`badge ${kindOf(state)}`} data-state=${state}>${state}</span>`;
}

/** A message for screen readers and eyes: `role=status`, or `alert` for errors. */
export function Notice({ error, children }: { error?: boolean; children: ComponentChildren }) {
  return html`<p class=${error ? 'notice error' : 'notice'} role=${error ? 'alert' : 'status'}>${children}</p>`;
}

/** A load error, or nothing. */
export const LoadError = ({ error }: { error?: string }) => (error ? html`<${Notice} error>Could not load: ${error}<//>` : null);

export function Section({ title, children, actions }: { title: string; children: ComponentChildren; actions?: ComponentChildren }) {
  return html`<section class="card" aria-label=${title}><header class="card-head"><h2>${title}</h2>${actions}</header>${children}</section>`;
}

/**
 * A table; on a phone each row becomes a card (style.css), every cell labelled with its column's
 * heading, so nothing scrolls sideways and each row's buttons stay in view.
 */
export function Table({ caption, head, children }: { caption: string; head: string[]; children: ComponentChildren }) {
  const table = useRef<HTMLTableElement>(null);
  useLayoutEffect(() => {
    for (const row of table.current?.tBodies[0]?.rows ?? [])
      [...row.cells].forEach((cell, i) => cell.setAttribute('data-label', head[i] ?? ''));
  });
  return html`<div class="table-wrap" tabindex="0" role="region" aria-label=${caption}>
    <table ref=${table}><caption class="sr-only">${caption}</caption><thead><tr>${head.map((c) => html`<th scope="col">${c}</th>`)}</tr></thead><tbody>${children}</tbody></table>
  </div>`;
}
