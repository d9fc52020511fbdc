// Users and API keys (admin): who may log in with which roles, and the keys machines use.
import { useState } from 'preact/hooks';
import { del, get, post, put, type Me } from '../api.js';
import { html, LoadError, messageOf, Notice, problemsOf, Section, Table, time, usePoll } from '../ui.js';

const WEB_ROLES = ['viewer', 'operator', 'admin'];

interface User {
  username: string;
  roles: string[];
}
interface ApiKey {
  id: string;
  name: string;
  role: string;
  created: string;
}

type Said = { text: string; error?: boolean; secret?: string } | undefined;

function useAction(reload: () => void): [Said, (f: () => Promise<Said>) => Promise<void>] {
  const [said, setSaid] = useState<Said>();
  const run = async (f: () => Promise<Said>) => {
    try {
      setSaid(await f());
    } catch (e) {
      const problems = problemsOf(e);
      setSaid({ text: problems.length ? problems.join('; ') : messageOf(e), error: true });
    }
    reload();
  };
  return [said, run];
}

function UserList({ me }: { me: Me }) {
  const { data, error, reload } = usePoll(() => get<User[]>('/api/users'), 10_000);
  const [said, run] = useAction(reload);
  const submit = (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const f = new FormData(form);
    const name = String(f.get('name'));
    const password = String(f.get('password'));
    const roles = [
      String(f.get('role')),
      ...String(f.get('other'))
        .split(/[\s,]+/)
        .filter(Boolean),
    ];
    return run(async () => {
      const r = await put<{ created: boolean }>(`/api/users/${encodeURIComponent(name)}`, { roles, ...(password ? { password } : {}) });
      form.reset();
      return { text: `User ${name} ${r.created ? 'added' : 'changed'}.` };
    });
  };
  const remove = (name: string) =>
    confirm(`Remove user ${name}?`) &&
    run(async () => (await del(`/api/users/${encodeURIComponent(name)}`), { text: `User ${name} removed.` }));
  return html`<${Section} title="Users">
    <${LoadError} error=${error} />
    ${
      data
        ? html`<${Table} caption="Users" head=${['User', 'Roles', '']}>
          ${data.map(
            (
              u,
            ) => html`<tr><th scope="row">${u.username}</th><td>${u.roles.join(', ') || html`<span class="muted">none (MQTT only)</span>`}</td>
            <td>${u.username === me.name ? html`<span class="muted">you</span>` : html`<button type="button" class="danger" onClick=${() => remove(u.username)} aria-label=${`Remove user ${u.username}`}>Remove</button>`}</td></tr>`,
          )}
        <//>`
        : null
    }
    <form class="stack" onSubmit=${submit}>
      <h3>Add or change a user</h3>
      <label for="user-name">User name</label>
      <input id="user-name" name="name" required pattern="[A-Za-z0-9._@\\-]{1,64}" autocomplete="off" />
      <label for="user-password">Password (at least 8 characters; leave empty to keep a user's password)</label>
      <input id="user-password" name="password" type="password" minlength="8" autocomplete="new-password" />
      <label for="user-role">Web role</label>
      <select id="user-role" name="role">${WEB_ROLES.map((r) => html`<option value=${r}>${r}</option>`)}</select>
      <label for="user-other">Other roles, for broker ACLs (comma-separated)</label>
      <input id="user-other" name="other" autocomplete="off" />
      <button type="submit">Save user</button>
    </form>
    ${said ? html`<${Notice} error=${said.error}>${said.text}<//>` : null}
  <//>`;
}

function KeyList() {
  const { data, error, reload } = usePoll(() => get<ApiKey[]>('/api/keys'), 10_000);
  const [said, run] = useAction(reload);
  const submit = (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const f = new FormData(form);
    return run(async () => {
      const k = await post<ApiKey & { key: string }>('/api/keys', { name: f.get('name'), role: f.get('role') });
      form.reset();
      return { text: `Key ${k.name} created. Copy it now; it is not shown again:`, secret: k.key };
    });
  };
  const revoke = (k: ApiKey) =>
    confirm(`Revoke key ${k.name}?`) &&
    run(async () => (await del(`/api/keys/${encodeURIComponent(k.id)}`), { text: `Key ${k.name} revoked.` }));
  return html`<${Section} title="API keys">
    <${LoadError} error=${error} />
    ${data?.length === 0 ? html`<p>No API keys.</p>` : null}
    ${
      data?.length
        ? html`<${Table} caption="API keys" head=${['Name', 'Role', 'Created', '']}>
          ${data.map(
            (k) => html`<tr><th scope="row">${k.name}</th><td>${k.role}</td><td>${time(k.created)}</td>
            <td><button type="button" class="danger" onClick=${() => revoke(k)} aria-label=${`Revoke key ${k.name}`}>Revoke</button></td></tr>`,
          )}
        <//>`
        : null
    }
    <form class="stack" onSubmit=${submit}>
      <h3>Create a key</h3>
      <label for="key-name">Name</label>
      <input id="key-name" name="name" required pattern="[A-Za-z0-9._@\\-]{1,64}" autocomplete="off" />
      <label for="key-role">Role</label>
      <select id="key-role" name="role">${WEB_ROLES.map((r) => html`<option value=${r}>${r}</option>`)}</select>
      <button type="submit">Create key</button>
    </form>
    ${said ? html`<${Notice} error=${said.error}>${said.text}${said.secret ? html` <code class="secret" data-testid="new-key">${said.secret}</code>` : null}<//>` : null}
  <//>`;
}

export function Users({ me }: { me: Me }) {
  return html`<div class="grid"><${UserList} me=${me} /><${KeyList} /></div>`;
}
