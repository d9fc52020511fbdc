// Reading schemas: the list, one's document, and (operators) editing it: the JSON is checked as it
// is typed, and the agent's own checks come back beside it when it is saved. Before a change is
// saved it is tried on the latest stored readings of its topics: if it would refuse some, the
// editor says how many and why, and saves only when asked again.
import { useEffect, useState } from 'preact/hooks';
import { del, get, post, put, type Me } from '../api.js';
import { html, LoadError, messageOf, Notice, problemsOf, Table, usePoll } from '../ui.js';

interface Summary {
  name: string;
  version: number;
  id: string;
  topics: string[];
  source: string;
  editable: boolean;
}

interface DryRun {
  checked: number;
  refused: number;
  examples: { seq: number; topic: string; reasons: { path: string; message: string }[] }[];
}

const TEMPLATE = { name: 'new-schema', topics: ['sensors/+/new'], fields: { temperature: { type: 'float', required: true, unit: '°C' } } };

function Editor({ name, me, onSaved }: { name: string | null; me: Me; onSaved: (name: string | null) => void }) {
  const [text, setText] = useState<string>();
  const [editable, setEditable] = useState(name === null);
  const [problems, setProblems] = useState<string[]>([]);
  const [notice, setNotice] = useState<{ text: string; error?: boolean }>();
  const [refusing, setRefusing] = useState<DryRun>();
  useEffect(() => {
    setProblems([]);
    setNotice(undefined);
    setRefusing(undefined);
    if (name === null) return setText(JSON.stringify(TEMPLATE, null, 2));
    setText(undefined);
    get<Summary & { doc: unknown }>(`/api/schemas/${encodeURIComponent(name)}`).then(
      (s) => {
        setText(JSON.stringify(s.doc, null, 2));
        setEditable(s.editable);
      },
      (e: unknown) => setNotice({ text: messageOf(e), error: true }),
    );
  }, [name]);
  if (text === undefined) return notice ? html`<${Notice} error>${notice.text}<//>` : html`<p role="status">Loading…</p>`;
  let syntax: string | undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    syntax = `Not valid JSON: ${messageOf(e)}`;
  }
  const canEdit = me.role !== 'viewer' && editable;
  const save = async (e: Event) => {
    e.preventDefault();
    if (syntax) return;
    try {
      if (!refusing) {
        const dry = await post<DryRun>('/api/schemas/check', doc);
        if (dry.refused > 0) return setRefusing(dry);
      }
      setRefusing(undefined);
      const saved =
        name === null ? await post<Summary>('/api/schemas', doc) : await put<Summary>(`/api/schemas/${encodeURIComponent(name)}`, doc);
      setProblems([]);
      setNotice({ text: `Saved ${saved.id}; it applies to readings from now on.` });
      onSaved(saved.name);
    } catch (err) {
      const listed = problemsOf(err);
      setProblems(listed.length ? listed : [messageOf(err)]);
      setNotice(undefined);
    }
  };
  const remove = async () => {
    if (name === null || !confirm(`Remove schema ${name}? Its topics then follow ingest.unmatched.`)) return;
    try {
      await del(`/api/schemas/${encodeURIComponent(name)}`);
      onSaved(null);
    } catch (err) {
      setNotice({ text: messageOf(err), error: true });
    }
  };
  const invalid = Boolean(syntax || problems.length);
  return html`<form class="editor" onSubmit=${save}>
    <label for="schema-doc">${name === null ? 'New schema' : `Schema ${name}`}${canEdit ? '' : ' (read only)'}</label>
    <textarea id="schema-doc" rows="16" spellcheck="false" readonly=${!canEdit} aria-invalid=${invalid} aria-describedby="schema-problems"
      value=${text} onInput=${(e: Event) => (setText((e.target as HTMLTextAreaElement).value), setProblems([]), setRefusing(undefined))}></textarea>
    <div id="schema-problems" aria-live="polite">
      ${syntax ? html`<p class="field-error">${syntax}</p>` : null}
      ${problems.length ? html`<ul class="field-error" data-testid="schema-problems">${problems.map((p) => html`<li>${p}</li>`)}</ul>` : null}
    </div>
    ${notice ? html`<${Notice} error=${notice.error}>${notice.text}<//>` : null}
    ${
      refusing
        ? html`<div class="notice error" role="alert" data-testid="dry-run">
          <p>This version would refuse ${refusing.refused} of the latest ${refusing.checked} stored readings on its topics: they would go to the dead letters.</p>
          <ul>${refusing.examples.slice(0, 3).map((x) => html`<li>${x.topic} (seq ${x.seq}): ${x.reasons.map((r) => `${r.path} ${r.message}`).join('; ')}</li>`)}</ul>
          <p>Save again to apply it anyway.</p>
        </div>`
        : null
    }
    ${!editable && name !== null ? html`<p class="muted">This schema comes from the config file: change it there.</p>` : null}
    ${canEdit ? html`<div class="actions"><button type="submit" disabled=${Boolean(syntax)}>${refusing ? 'Save anyway' : 'Save'}</button>${name !== null ? html`<button type="button" class="danger" onClick=${remove}>Remove</button>` : null}</div>` : null}
  </form>`;
}

export function Schemas({ me }: { me: Me }) {
  const { data, error, reload } = usePoll(() => get<Summary[]>('/api/schemas'), 10_000);
  const [open, setOpen] = useState<string | null | undefined>(undefined);
  return html`<${LoadError} error=${error} />
    ${me.role !== 'viewer' ? html`<p><button type="button" onClick=${() => setOpen(null)}>New schema</button></p>` : null}
    ${data && data.length === 0 ? html`<p>No schemas: readings are taken as ingest.unmatched says.</p>` : null}
    ${
      data?.length
        ? html`<${Table} caption="Schemas" head=${['Name', 'Version', 'Topics', 'Source', '']}>
          ${data.map(
            (
              s,
            ) => html`<tr><th scope="row">${s.name}</th><td>${s.version}</td><td>${s.topics.join(', ')}</td><td class="muted">${s.source}</td>
              <td><button type="button" onClick=${() => setOpen(s.name)}>${me.role !== 'viewer' && s.editable ? 'Edit' : 'View'}<span class="sr-only"> schema ${s.name}</span></button></td></tr>`,
          )}
        <//>`
        : null
    }
    ${
      open !== undefined
        ? html`<${Editor} key=${open ?? '(new)'} name=${open} me=${me} onSaved=${(n: string | null) => (reload(), setOpen(n ?? undefined))} />`
        : null
    }`;
}
