// The HTTP allow-list (where scripts and the webhook may connect) and the secrets scripts send
// (issue 18 item 6). docs/api.md's roles: a developer reads the allow-list, an admin changes it
// and is the only one to list, set or delete secrets. A secret's value is write-only: the API
// never returns it and this page never shows it back (the input is cleared once it is saved).
//   GET/PUT /v1/allowlist, GET /v1/secrets, PUT/DELETE /v1/secrets/{name}
import { api, listAll, enc } from './api.js';
import { h, append, clear, field, announce, showErrors, clearErrors } from './dom.js';
import { errorNote, readOnlyNote, confirmButton, NEEDS } from './settings_kit.js';

export async function renderSettings(view, app) {
  clear(view);
  const allow = h('section', { class: 'card', id: 'allowlist', 'aria-labelledby': 'allowlist-h' });
  const secrets = h('section', { class: 'card', id: 'secrets', 'aria-labelledby': 'secrets-h' });
  view.append(h('div', { class: 'view-head' }, h('h1', { id: 'settings-h' }, 'Allow-list and secrets')),
    h('p', { class: 'lead' }, 'Scripts’ HTTP calls and the webhook may only reach the hosts on the allow-list; secrets are sent by scripts as tokens and are never shown again once saved.'),
    allow, secrets);
  await Promise.all([drawAllowlist(allow, app), drawSecrets(secrets, app)]);
}

/** One host per line (or comma-separated) → the list PUT /v1/allowlist takes. */
function hostsOf(text) {
  return text.split(/[\n,]/).map((s) => s.trim()).filter(Boolean);
}

async function drawAllowlist(box, app) {
  clear(box).append(h('h2', { id: 'allowlist-h' }, 'HTTP allow-list'));
  let hosts;
  try {
    hosts = (await api('GET', '/v1/allowlist')).hosts || [];
  } catch (err) {
    box.append(errorNote(err, 'the allow-list', 'allowlist-note'));
    return;
  }
  append(box, [hosts.length
    ? h('ul', { id: 'allowlist-hosts', class: 'host-list' }, hosts.map((x) => h('li', null, h('code', null, x))))
    : h('p', { id: 'allowlist-hosts' }, 'The allow-list is empty: scripts may not call out, and no webhook can be set.'),
  readOnlyNote(app, NEEDS.allowlistWrite, 'the allow-list')]);
  if (!app.can(NEEDS.allowlistWrite)) return;
  const text = h('textarea', { id: 'allowlist-text', rows: String(Math.max(4, hosts.length + 1)), dataset: { path: 'hosts' }, spellcheck: 'false' });
  text.value = hosts.join('\n');
  const form = h('form', { id: 'allowlist-form', novalidate: true },
    field('Hosts, one per line', text, 'host or host:port, at most 100; an IP address allows that address only'),
    h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary' }, 'Save allow-list')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(form);
    try {
      const got = await api('PUT', '/v1/allowlist', { hosts: hostsOf(text.value) });
      announce(`The allow-list has ${got.hosts.length} host${got.hosts.length === 1 ? '' : 's'}.`);
      await drawAllowlist(box, app);
      box.querySelector('#allowlist-text')?.focus();
    } catch (err) {
      // hosts[2] → the one textarea: showErrors falls back to its parent path, `hosts`.
      showErrors(form, err.details || [{ path: 'hosts', reason: err.message }]);
      announce(`Not saved: ${err.message}`, 'error');
      text.focus();
    }
  });
  box.append(form);
}

async function drawSecrets(box, app) {
  clear(box).append(h('h2', { id: 'secrets-h' }, 'Secrets'));
  let items;
  try {
    items = await listAll('/v1/secrets');
  } catch (err) {
    box.append(errorNote(err, 'the secrets', 'secrets-note'));
    return;
  }
  const redraw = (focusSel) => drawSecrets(box, app).then(() => box.querySelector(focusSel)?.focus());
  box.append(items.length ? h('table', { id: 'secrets-table', class: 'settings' },
    h('caption', { class: 'sr-only' }, 'Secrets (names only; values are never shown)'),
    h('thead', null, h('tr', null, ['Name', 'Value', 'May be sent to', ''].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', null, items.map((s) => h('tr', { dataset: { secret: s.name } },
      h('td', null, h('code', null, s.name)),
      h('td', { class: 'hint' }, 'set (write-only)'),
      h('td', null, s.hosts ? (s.hosts.length ? s.hosts.join(', ') : 'no host') : 'any allow-listed host'),
      h('td', null, confirmButton('Delete', `Delete secret ${s.name}`, `Press again to delete the secret ${s.name}; scripts that send it will fail.`, async () => {
        try {
          await api('DELETE', `/v1/secrets/${enc(s.name)}`);
          announce(`Deleted the secret ${s.name}.`);
          await redraw('#secret-name');
        } catch (err) { announce(`Could not delete: ${err.message}`, 'error'); }
      })))))) : h('p', { id: 'secrets-empty' }, 'No secrets yet.'));

  const name = h('input', { type: 'text', id: 'secret-name', dataset: { path: 'name' }, autocomplete: 'off', spellcheck: 'false' });
  const value = h('input', { type: 'password', id: 'secret-value', dataset: { path: 'value' }, autocomplete: 'new-password' });
  const hosts = h('input', { type: 'text', id: 'secret-hosts', dataset: { path: 'hosts' }, autocomplete: 'off', spellcheck: 'false' });
  const form = h('form', { class: 'inline-form', id: 'secret-form', novalidate: true, 'aria-labelledby': 'secret-form-h' },
    h('h3', { id: 'secret-form-h' }, 'Set a secret'),
    field('Name', name, 'letters, digits and _; an existing name is replaced'),
    field('Value', value, 'write-only: it is never shown again'),
    field('Only to hosts (optional)', hosts, 'comma-separated allow-list entries; empty: any allow-listed host'),
    h('button', { type: 'submit', class: 'primary' }, 'Save secret'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(form);
    const body = { value: value.value };
    if (hosts.value.trim()) body.hosts = hostsOf(hosts.value);
    const n = name.value.trim();
    try {
      if (!n) throw Object.assign(new Error('Name the secret.'), { details: [{ path: 'name', reason: 'is required' }] });
      await api('PUT', `/v1/secrets/${enc(n)}`, body);
      value.value = '';
      announce(`The secret ${n} is saved; its value will not be shown.`);
      await redraw('#secret-name');
    } catch (err) {
      const placed = showErrors(form, err.details || [{ path: 'name', reason: err.message }]);
      announce(`Not saved: ${err.message}`, 'error');
      (placed[0]?.target || name).focus();
    }
  });
  box.append(form);
}
