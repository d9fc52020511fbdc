import { useState } from 'preact/hooks';
import { ApiError, post, type Me } from '../api.js';
import { html, messageOf, Notice } from '../ui.js';

export function Login({ onLogin, ended }: { onLogin: (me: Me) => void; ended: boolean }) {
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  async function submit(e: Event) {
    e.preventDefault();
    const form = new FormData(e.currentTarget as HTMLFormElement);
    setBusy(true);
    setError(undefined);
    try {
      const r = await post<{ username: string; role: Me['role'] }>('/api/auth/login', {
        username: form.get('username'),
        password: form.get('password'),
      });
      onLogin({ name: r.username, role: r.role });
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? 'Wrong user name or password.' : messageOf(err));
    } finally {
      setBusy(false);
    }
  }
  return html`<main id="main" class="login">
    <form onSubmit=${submit} aria-labelledby="login-title">
      <h1 id="login-title">edge-agent</h1>
      ${ended && !error ? html`<${Notice}>Your session ended; log in again.<//>` : null}
      <label for="username">User name</label>
      <input id="username" name="username" autocomplete="username" required autofocus maxlength="64" />
      <label for="password">Password</label>
      <input id="password" name="password" type="password" autocomplete="current-password" required maxlength="1024" />
      ${error ? html`<${Notice} error>${error}<//>` : null}
      <button type="submit" disabled=${busy}>${busy ? 'Logging in…' : 'Log in'}</button>
    </form>
  </main>`;
}
