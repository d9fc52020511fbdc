// The status page: a login, then views chosen by the URL's hash (#/sync), each loading what it
// shows from the agent's public API. Admin-only views are not offered to others, and the API
// refuses them anyway.
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { get, onLoggedOut, post, type Me } from './api.js';
import { html, Notice } from './ui.js';
import { Login } from './views/login.js';
import { Overview } from './views/overview.js';
import { Broker } from './views/broker.js';
import { LiveReadings } from './views/live.js';
import { Charts } from './views/charts.js';
import { Sync } from './views/sync.js';
import { DeadLetters } from './views/dead-letters.js';
import { Schemas } from './views/schemas.js';
import { Alerts } from './views/alerts.js';
import { Users } from './views/users.js';

interface View {
  path: string;
  title: string;
  admin?: boolean;
  render: (me: Me) => unknown;
}

const VIEWS: View[] = [
  { path: 'overview', title: 'Overview', render: () => html`<${Overview} />` },
  { path: 'broker', title: 'Broker', render: (me) => html`<${Broker} me=${me} />` },
  { path: 'live', title: 'Live', render: () => html`<${LiveReadings} />` },
  { path: 'charts', title: 'Charts', render: () => html`<${Charts} />` },
  { path: 'sync', title: 'Sync', render: (me) => html`<${Sync} me=${me} />` },
  { path: 'dead-letters', title: 'Dead letters', render: (me) => html`<${DeadLetters} me=${me} />` },
  { path: 'schemas', title: 'Schemas', render: (me) => html`<${Schemas} me=${me} />` },
  { path: 'alerts', title: 'Alerts', render: () => html`<${Alerts} />` },
  { path: 'users', title: 'Users and keys', admin: true, render: (me) => html`<${Users} me=${me} />` },
];

const pathOf = () => location.hash.replace(/^#\/?/, '').split('?')[0] || 'overview';

function useHashPath(): string {
  const [path, setPath] = useState(pathOf());
  useEffect(() => {
    const changed = () => setPath(pathOf());
    addEventListener('hashchange', changed);
    return () => removeEventListener('hashchange', changed);
  }, []);
  return path;
}

function Shell({ me, onLogout }: { me: Me; onLogout: () => void }) {
  const path = useHashPath();
  const view = VIEWS.find((v) => v.path === path);
  const [menu, setMenu] = useState(false);
  useEffect(() => {
    document.title = `${view?.title ?? 'Not found'} · edge-agent`;
    setMenu(false);
    document.getElementById('main')?.focus({ preventScroll: true });
  }, [path]);
  const refused = view?.admin && me.role !== 'admin';
  return html`
    <a class="skip" href="#main" onClick=${(e: Event) => (e.preventDefault(), document.getElementById('main')?.focus())}>Skip to content</a>
    <header class="top">
      <span class="brand">edge-agent</span>
      <button class="menu-button" aria-expanded=${menu} aria-controls="nav" onClick=${() => setMenu(!menu)}>Menu</button>
      <nav id="nav" aria-label="Views" class=${menu ? 'open' : ''}>
        <ul>
          ${VIEWS.filter((v) => !v.admin || me.role === 'admin').map(
            (v) => html`<li><a href=${`#/${v.path}`} aria-current=${v.path === path ? 'page' : undefined}>${v.title}</a></li>`,
          )}
        </ul>
      </nav>
      <span class="who">${me.name} <span class="role">(${me.role})</span></span>
      <button class="logout" onClick=${onLogout}>Log out</button>
    </header>
    <main id="main" tabindex="-1">
      <h1>${view?.title ?? 'Not found'}</h1>
      ${
        !view
          ? html`<${Notice} error>No such view: <a href="#/overview">go to the overview</a>.<//>`
          : refused
            ? html`<${Notice} error>This view needs the admin role; you are ${me.role}.<//>`
            : view.render(me)
      }
    </main>`;
}

function App() {
  const [me, setMe] = useState<Me | null | undefined>(undefined);
  const [ended, setEnded] = useState(false);
  const loggedIn = useRef(false);
  loggedIn.current = Boolean(me);
  useEffect(() => {
    // Only a session that was open can end; the first look (no cookie yet) is not news.
    onLoggedOut(() => {
      setEnded(loggedIn.current);
      setMe(null);
    });
    get<Me>('/api/auth/me').then(setMe, () => setMe(null));
  }, []);
  if (me === undefined) return html`<main id="main"><p role="status">Loading…</p></main>`;
  if (me === null)
    return html`<${Login} ended=${ended} onLogin=${(m: Me) => {
      setEnded(false);
      setMe(m);
    }} />`;
  const logout = async () => {
    await post('/api/auth/logout').catch(() => undefined);
    setMe(null);
  };
  return html`<${Shell} me=${me} onLogout=${logout} />`;
}

render(html`<${App} />`, document.getElementById('app')!);
