// Scripts (issue 18 item 6): the list; per script its versions (each one's source), the rules
// that run it and the version each pins (a manager re-pins with one PATCH of the rule's actions),
// an editor that uploads a new version, and a test run on a sample event showing the returned
// updates, logs, HTTP calls, timing and the error code. docs/api.md's roles: a viewer reads
// scripts and rules, a manager edits rules, a developer uploads and test-runs scripts.
//   GET /v1/scripts, GET /v1/scripts/{name}, GET /v1/scripts/{name}/versions/{n},
//   POST /v1/scripts, POST /v1/scripts/{name}/test, GET and PATCH /v1/rules/{id}
import { api, listAll, enc } from './api.js';
import { h, append, clear, field, announce, showErrors, clearErrors } from './dom.js';
import { scriptBlock } from './panels.js';
import { errorNote, readOnlyNote, when, NEEDS } from './settings_kit.js';

const HELLO = 'def run(event, ticket, ctx):\n    ctx.log("saw " + event["type"])\n    return {"add_tags": ["scripted"]}\n';
const SAMPLE_EVENT = { id: 'sample-1', type: 'ticket.created', ticket: { id: 'T-sample', subject: 'Where is my order?',
  status: 'new', priority: 'normal', channel: 'email', tags: [], contact: { email: 'ana@example.com' } } };

export async function renderScripts(view, app) {
  clear(view);
  const out = h('div', { id: 'scripts-out' }, h('p', null, 'Loading…'));
  append(view, [h('div', { class: 'view-head' }, h('h1', { id: 'scripts-h' }, 'Scripts')),
    h('p', { class: 'lead' }, 'Python run in the sandbox by a rule’s “Run a script” action. A rule runs the latest version unless it pins one.'),
    readOnlyNote(app, NEEDS.scriptWrite, 'scripts (upload, test run)'), out]);
  let scripts;
  let rules = [];
  try {
    [scripts, rules] = await Promise.all([listAll('/v1/scripts'), listAll('/v1/rules').catch(() => [])]);
  } catch (err) {
    clear(out).append(err.status === 404
      ? h('p', { class: 'note', id: 'scripts-note' }, 'This service does not offer scripts yet (GET /v1/scripts is not there). Rules work without them.')
      : errorNote(err, 'scripts', 'scripts-note'));
    return;
  }
  clear(out);
  const redraw = (name) => renderScripts(view, app).then(() => {
    view.querySelector(`li[data-script="${CSS.escape(name)}"] button.open-script`)?.click();
  });
  if (!scripts.length) out.append(h('p', { class: 'note', id: 'scripts-note' }, 'No scripts yet.'));
  else {
    out.append(h('ul', { class: 'script-list' }, scripts.map((s) => {
      const detail = h('div', { class: 'script-detail' });
      const btn = h('button', { type: 'button', class: 'quiet open-script', 'aria-expanded': 'false', 'aria-label': `Open ${s.name}` }, 'Open');
      btn.addEventListener('click', async () => {
        const open = btn.getAttribute('aria-expanded') === 'true';
        btn.setAttribute('aria-expanded', String(!open));
        btn.textContent = open ? 'Open' : 'Close';
        btn.setAttribute('aria-label', `${open ? 'Open' : 'Close'} ${s.name}`);
        if (open) { clear(detail); return; }
        await showScript(s, detail, app, rules, () => redraw(s.name));
      });
      const users = usersOf(rules, s.name);
      return h('li', { class: 'card', dataset: { script: s.name } },
        h('h2', null, s.name, ' ', h('span', { class: 'chip' }, `v${s.latest ?? '?'}`)),
        h('p', { class: 'hint' }, 'Updated ', when(s.updated_at || s.created_at), s.timeout ? ` · timeout ${s.timeout}` : '',
          ` · run by ${users.length} rule${users.length === 1 ? '' : 's'}`),
        btn, detail);
    })));
  }
  if (app.can(NEEDS.scriptWrite)) out.append(uploadForm(null, HELLO, (name) => redraw(name)));
}

/** Each rule with a run_script action naming `name`, with the action's index and pinned version. */
function usersOf(rules, name) {
  const out = [];
  for (const r of rules) {
    (r.actions || []).forEach((a, i) => { if (a.type === 'run_script' && a.script === name) out.push({ rule: r, index: i, version: a.version ?? null }); });
  }
  return out;
}

async function showScript(s, detail, app, rules, redraw) {
  clear(detail).append(h('p', null, 'Loading…'));
  let full;
  try {
    full = await api('GET', `/v1/scripts/${enc(s.name)}`);
  } catch (err) {
    clear(detail).append(errorNote(err, `the script ${s.name}`));
    return;
  }
  const latest = full.version;
  const pre = h('pre', { class: 'code script-source', tabindex: '0', 'aria-label': `Source of ${s.name}` }, full.source || '');
  const shown = h('p', { class: 'hint source-of' }, `Version ${latest} (latest):`);
  const view = async (n) => {
    try {
      const v = await api('GET', `/v1/scripts/${enc(s.name)}/versions/${enc(n)}`);
      pre.textContent = v.source || '';
      shown.textContent = `Version ${v.version}${v.version === latest ? ' (latest)' : ''}:`;
      announce(`Showing version ${v.version} of ${s.name}.`);
    } catch (err) { pre.textContent = ''; shown.textContent = `Could not load version ${n}: ${err.message}`; }
  };
  const versions = [...(full.versions || [])].reverse();
  append(clear(detail), [
    h('h3', null, 'Versions'),
    h('table', { class: 'settings versions' },
      h('caption', { class: 'sr-only' }, `Versions of ${s.name}, newest first`),
      h('thead', null, h('tr', null, ['Version', 'Uploaded', 'By', 'Timeout', ''].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, versions.map((v) => h('tr', { dataset: { version: String(v.version) } },
        h('td', null, `v${v.version}`), h('td', null, when(v.created_at)), h('td', null, h('code', null, v.created_by || '')),
        h('td', null, v.timeout || 'default'),
        h('td', null, h('button', { type: 'button', class: 'quiet', 'aria-label': `View version ${v.version} of ${s.name}`, onclick: () => view(v.version) }, 'View')))))),
    shown, pre,
    pinsSection(s.name, usersOf(rules, s.name), versions.map((v) => v.version), app, redraw),
    app.can(NEEDS.scriptWrite) ? [uploadForm(s.name, full.source || '', redraw, full.timeout), testForm(s.name, versions.map((v) => v.version))] : null]);
}

function pinsSection(name, users, versions, app, redraw) {
  const box = h('section', { class: 'pins', 'aria-label': `Rules that run ${name}` }, h('h3', null, 'Rules that run it'));
  if (!users.length) { box.append(h('p', { class: 'hint' }, 'No rule runs this script.')); return box; }
  const canPin = app.can(NEEDS.ruleWrite);
  box.append(h('table', { class: 'settings pins-table' },
    h('thead', null, h('tr', null, ['Rule', 'Runs', canPin ? 'Pin to' : ''].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', null, users.map((u) => {
      const sel = h('select', { 'aria-label': `Version “${u.rule.name}” runs` },
        h('option', { value: '', selected: u.version === null }, 'the latest'),
        versions.map((v) => h('option', { value: String(v), selected: u.version === v }, `version ${v}`)));
      const row = h('tr', { dataset: { rule: u.rule.id } },
        h('td', null, u.rule.name, u.rule.enabled ? '' : ' (disabled)'),
        h('td', { class: 'pinned' }, u.version === null ? 'the latest' : `version ${u.version} (pinned)`),
        h('td', null, canPin ? [sel, ' ', h('button', { type: 'button', class: 'quiet', 'aria-label': `Pin “${u.rule.name}”`, onclick: async () => {
          clearErrors(row);
          const actions = u.rule.actions.map((a, i) => {
            if (i !== u.index) return a;
            const next = { ...a };
            if (sel.value) next.version = Number(sel.value); else delete next.version;
            return next;
          });
          try {
            await api('PATCH', `/v1/rules/${enc(u.rule.id)}`, { actions });
            announce(`“${u.rule.name}” now runs ${sel.value ? `version ${sel.value}` : 'the latest version'} of ${name}.`);
            await redraw();
          } catch (err) {
            row.querySelector('td:last-child').append(h('p', { class: 'field-error', dataset: { errorFor: 'version' } }, err.message));
            announce(`Not pinned: ${err.message}`, 'error');
          }
        } }, 'Pin')] : null));
      return row;
    }))));
  return box;
}

function uploadForm(name, source, after, timeout) {
  const isNew = name === null;
  const nameIn = isNew ? h('input', { type: 'text', id: 'new-script-name', dataset: { path: 'name' }, autocomplete: 'off', spellcheck: 'false' }) : null;
  const text = h('textarea', { rows: '10', class: 'code', dataset: { path: 'source' }, spellcheck: 'false' });
  text.value = source;
  const time = h('input', { type: 'text', value: timeout || '', placeholder: '5s', dataset: { path: 'timeout' }, class: 'short' });
  const form = h('form', { class: 'card script-upload', novalidate: true, dataset: { script: name || '' } },
    h('h3', null, isNew ? 'New script' : 'Upload a new version'),
    isNew ? field('Name', nameIn, 'a-z, 0-9, _ and -') : null,
    field('Source', text, 'def run(event, ticket, ctx): … (64 KiB at most)'),
    field('Timeout', time, 'at most 30s; empty: the default'),
    h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary' }, isNew ? 'Upload script' : 'Upload as new version')));
  const summary = h('div', { class: 'error-summary', hidden: true });
  form.append(summary);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = { name: isNew ? nameIn.value.trim() : name, source: text.value };
    if (time.value.trim()) body.timeout = time.value.trim();
    try {
      const got = await api('POST', '/v1/scripts', body);
      clearErrors(form);
      summary.hidden = true;
      announce(`Uploaded ${got.name} version ${got.version}.`);
      await after(got.name);
    } catch (err) {
      showErrors(form, err.details || [{ path: 'source', reason: err.message }], summary);
      announce(`Not uploaded: ${err.message}`, 'error');
    }
  });
  return form;
}

function openLogs(block) {
  block.querySelector('details')?.setAttribute('open', '');
  return block;
}

function testForm(name, versions) {
  const event = h('textarea', { rows: '8', class: 'code', dataset: { path: 'event' }, spellcheck: 'false' });
  event.value = JSON.stringify(SAMPLE_EVENT, null, 2);
  const version = h('select', { dataset: { path: 'version' } }, versions.map((v) => h('option', { value: String(v) }, `version ${v}`)));
  const out = h('div', { class: 'script-test-out', 'aria-live': 'polite' });
  const form = h('form', { class: 'card script-test', novalidate: true, dataset: { script: name } },
    h('h3', null, 'Test run'),
    h('p', { class: 'hint' }, 'Runs the version on this event (and its ticket) in the sandbox; nothing is applied. HTTP calls are real and obey the allow-list.'),
    field('Sample event (JSON)', event), field('Version', version),
    h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary' }, 'Run test')), out);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(form);
    clear(out);
    let parsed;
    try { parsed = JSON.parse(event.value); } catch (err) {
      showErrors(form, [{ path: 'event', reason: `is not JSON: ${err.message}` }]);
      return;
    }
    out.append(h('p', null, 'Running…'));
    try {
      const got = await api('POST', `/v1/scripts/${enc(name)}/test`, { event: parsed, version: Number(version.value) });
      append(clear(out), [h('p', { class: `test-summary ${got.error ? 'error-text' : 'ok-text'}` },
        `Version ${got.version} took ${got.duration_ms ?? '?'} ms · `,
        got.error ? h('strong', { class: 'error-code' }, got.error.code) : 'no error',
        got.error ? ` — ${got.error.message}` : ''),
      openLogs(scriptBlock({ ...got, error: null })),
      (got.logs || []).length || (got.http_calls || []).length ? null : h('p', { class: 'hint' }, 'No log lines and no HTTP calls.')]);
      announce(got.error ? `The test run failed: ${got.error.code}.` : `The test run took ${got.duration_ms} ms.`, got.error ? 'error' : 'ok');
    } catch (err) {
      clear(out);
      showErrors(form, err.details || [{ path: 'event', reason: err.message }]);
      announce(`Not run: ${err.message}`, 'error');
    }
  });
  return form;
}
