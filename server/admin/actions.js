// The editor's actions: the list of actions in the order they apply, each with the inputs of its
// type (from the served vocabulary's ACTION_KEYS), ▲/▼ to reorder, and pickers of the groups, SLA
// policies and scripts that exist (pickers.js) where an action names one.
import { h, field } from './dom.js';
import { vocab, parseScalar, showScalar, splitList, fieldLabel, ACTION_LABELS } from './vocab.js';
import { namePicker } from './pickers.js';

const ACTION_DEFAULTS = {
  set: () => ({ field: 'priority', value: 'high' }),
  add_tags: () => ({ tags: [] }),
  remove_tags: () => ({ tags: [] }),
  add_to_group: () => ({ group: '' }),
  remove_from_group: () => ({ group: '' }),
  apply_sla: () => ({ policy: '' }),
  snooze: () => ({ for: '1h' }),
  wake: () => ({}),
  close: () => ({}),
  send_message: () => ({ template: '' }),
  notify: () => ({ target: '', message: '' }),
  webhook: () => ({ url: '', method: 'POST' }),
  http_request: () => ({ url: '', method: 'GET', map: {} }),
  run_script: () => ({ script: '' }),
};

/** An action naming something that exists (a group, a policy, a script): a picker of the names
 *  `ctx.ed.names[list]` once that list is read, else a text box. */
function picked(ctx, a, key, path, label, list, what, textOpts = {}) {
  if (!ctx.ed.names.loaded[list]) return text(a, key, path, label, textOpts);
  return field(label, namePicker({ names: ctx.ed.names[list], value: a[key], what, dataset: { path: `${path}.${key}` },
    onpick: (v) => { a[key] = v; } }));
}

export function actionsFieldset(ctx) {
  const { ed, redraw } = ctx;
  const fs = h('fieldset', { class: 'actions errors-here', dataset: { path: 'actions' }, tabindex: '-1' },
    h('legend', null, 'Actions — applied in this order when the rule fires'));
  const ol = h('ol', { class: 'action-list' });
  ed.draft.actions.forEach((a, i) => ol.append(actionRow(ctx, a, i)));
  if (!ed.draft.actions.length) ol.append(h('li', { class: 'hint empty' }, 'No actions yet: a rule needs at least one.'));
  const addSel = h('select', { id: 'add-action-type' },
    Object.keys(vocab().actions).map((t) => h('option', { value: t }, ACTION_LABELS[t] || t)));
  fs.append(ol, h('div', { class: 'add-action' },
    h('label', { for: 'add-action-type' }, 'New action'), addSel,
    h('button', { type: 'button', id: 'add-action', onclick: () => {
      const t = addSel.value;
      ed.draft.actions.push({ type: t, ...ACTION_DEFAULTS[t]() });
      redraw(`actions[${ed.draft.actions.length - 1}].type`);
    } }, 'Add action')));
  return fs;
}

function actionRow(ctx, a, i) {
  const { ed, redraw } = ctx;
  const path = `actions[${i}]`;
  const list = ed.draft.actions;
  const typeSel = h('select', { dataset: { path: `${path}.type` }, 'aria-label': `Type of action ${i + 1}`,
    onchange: (e) => { const t = e.target.value; list[i] = { type: t, ...(ACTION_DEFAULTS[t]?.() || {}) }; redraw(`${path}.type`); } },
  Object.keys(vocab().actions).map((t) => h('option', { value: t, selected: a.type === t }, ACTION_LABELS[t] || t)));
  if (!(a.type in vocab().actions)) typeSel.prepend(h('option', { value: a.type ?? '', selected: true }, `${a.type} (unknown)`));
  const move = (d) => { const j = i + d; [list[i], list[j]] = [list[j], list[i]]; redraw(`actions[${j}].type`); };
  return h('li', { class: 'action', dataset: { path } },
    h('div', { class: 'action-head' },
      h('span', { class: 'n' }, `${i + 1}.`), h('div', { class: 'field' }, typeSel),
      h('span', { class: 'spacer' }),
      h('button', { type: 'button', class: 'icon quiet', 'aria-label': `Move action ${i + 1} up`, disabled: i === 0, onclick: () => move(-1) }, '▲'),
      h('button', { type: 'button', class: 'icon quiet', 'aria-label': `Move action ${i + 1} down`, disabled: i === list.length - 1, onclick: () => move(1) }, '▼'),
      h('button', { type: 'button', class: 'icon quiet danger', 'aria-label': `Remove action ${i + 1}`, onclick: () => { list.splice(i, 1); redraw('actions'); } }, '✕')),
    h('div', { class: 'action-params' }, actionParams(ctx, a, path, i)));
}

function text(a, key, path, label, opts = {}) {
  const optional = !opts.required && !vocab().actions[a.type]?.required.includes(key);
  const tag = opts.multiline ? 'textarea' : 'input';
  const el = h(tag, { type: opts.multiline ? null : (opts.type || 'text'), rows: opts.multiline ? '3' : null, value: a[key] == null ? '' : String(a[key]),
    dataset: { path: `${path}.${key}` }, placeholder: opts.placeholder || null, list: opts.list || null,
    oninput: (e) => {
      const v = e.target.value;
      if (v === '' && optional) delete a[key];
      else if (opts.number) a[key] = v === '' ? null : Number(v);
      else a[key] = opts.nullIfEmpty && v === '' ? null : v;
    } });
  return field(label + (optional ? ' (optional)' : ''), el, opts.hint);
}

function jsonBox(ctx, a, key, path, label, hint) {
  const { ed } = ctx;
  const optional = !vocab().actions[a.type]?.required.includes(key);
  const dp = `${path}.${key}`;
  const el = h('textarea', { rows: '3', class: 'code', dataset: { path: dp }, value: a[key] === undefined ? '' : JSON.stringify(a[key], null, 1),
    oninput: (e) => {
      const v = e.target.value.trim();
      if (v === '') { if (optional) delete a[key]; else a[key] = {}; ed.jsonBad.delete(dp); e.target.removeAttribute('aria-invalid'); return; }
      try { a[key] = JSON.parse(v); ed.jsonBad.delete(dp); e.target.removeAttribute('aria-invalid'); } catch { ed.jsonBad.add(dp); e.target.setAttribute('aria-invalid', 'true'); }
    } });
  return field(`${label} (JSON${optional ? ', optional' : ''})`, el, hint);
}

function methodSelect(a, path, def) {
  const sel = h('select', { dataset: { path: `${path}.method` }, onchange: (e) => { a.method = e.target.value; } },
    vocab().methods.map((m) => h('option', { value: m, selected: (a.method || def) === m }, m)));
  return field('Method', sel);
}

function actionParams(ctx, a, path) {
  const { redraw } = ctx;
  switch (a.type) {
    case 'set': {
      const settable = vocab().settable;
      const isCustom = typeof a.field === 'string' && a.field.startsWith('custom.');
      const fsel = h('select', { dataset: { path: `${path}.field` },
        onchange: (e) => {
          const v = e.target.value;
          a.field = v === 'custom.' ? 'custom.' : v;
          const en = settable[v];
          a.value = en ? (en.includes('high') ? 'high' : en[0]) : null;
          redraw(`${path}.field`);
        } },
      Object.keys(settable).map((f) => h('option', { value: f, title: f, selected: a.field === f }, fieldLabel(f))),
      h('option', { value: 'custom.', selected: isCustom }, 'custom.<key>'));
      const out = [field('Field', fsel)];
      if (isCustom) {
        out.push(field('Custom key', h('input', { type: 'text', value: a.field.slice(7), dataset: { path: `${path}.field.key` },
          oninput: (e) => { a.field = `custom.${e.target.value}`; } })));
      }
      const en = settable[a.field];
      if (en) {
        out.push(field('Value', h('select', { dataset: { path: `${path}.value` }, onchange: (e) => { a.value = e.target.value; } },
          en.map((v) => h('option', { value: v, selected: a.value === v }, v)))));
      } else if (isCustom) {
        out.push(field('Value', h('input', { type: 'text', value: a.value == null ? '' : showScalar(a.value), dataset: { path: `${path}.value` },
          oninput: (e) => { a.value = e.target.value === '' ? null : parseScalar(e.target.value); } }), 'empty removes the key; numbers and true/false are read as such'));
      } else {
        out.push(field('Value', h('input', { type: 'text', value: a.value ?? '', dataset: { path: `${path}.value` },
          oninput: (e) => { a.value = e.target.value === '' ? null : e.target.value; } }), 'empty clears the field'));
      }
      return out;
    }
    case 'add_tags':
    case 'remove_tags':
      return field('Tags', h('input', { type: 'text', value: (a.tags || []).join(', '), dataset: { path: `${path}.tags` },
        oninput: (e) => { a.tags = splitList(e.target.value); } }), 'comma-separated');
    case 'add_to_group':
    case 'remove_from_group':
      return picked(ctx, a, 'group', path, 'Group', 'groups', 'group', { list: 'group-names' });
    case 'apply_sla':
      return picked(ctx, a, 'policy', path, 'SLA policy', 'policies', 'SLA policy');
    case 'snooze': {
      const mode = 'until' in a ? 'until' : 'for';
      const modeSel = h('select', { dataset: { path: `${path}.mode` },
        onchange: (e) => { const v = a[mode]; delete a[mode]; a[e.target.value] = v ?? ''; redraw(`${path}.${e.target.value}`); } },
      h('option', { value: 'for', selected: mode === 'for' }, 'for a duration'),
      h('option', { value: 'until', selected: mode === 'until' }, 'until a time'));
      return [field('Snooze', modeSel),
        text(a, mode, path, mode === 'for' ? 'Duration' : 'Until (RFC 3339)', { required: true, placeholder: mode === 'for' ? '1h30m' : '2026-12-01T09:00:00Z' })];
    }
    case 'wake':
    case 'close':
      return h('p', { class: 'hint' }, a.type === 'close' ? 'Sets the status to closed.' : 'Takes the ticket out of snooze.');
    case 'send_message':
      return text(a, 'template', path, 'Message template', { multiline: true, hint: 'placeholders like {{ticket.subject}}, {{contact.name}}, {{vars.x}}' });
    case 'notify':
      return [text(a, 'target', path, 'Who (agent or team)'), text(a, 'message', path, 'Message', { multiline: true })];
    case 'webhook':
      return [text(a, 'url', path, 'URL', { type: 'url', placeholder: 'https://…' }), methodSelect(a, path, 'POST'),
        jsonBox(ctx, a, 'headers', path, 'Headers'), jsonBox(ctx, a, 'body', path, 'Body')];
    case 'http_request':
      return [text(a, 'url', path, 'URL', { type: 'url', placeholder: 'https://…' }), methodSelect(a, path, 'GET'),
        text(a, 'secret', path, 'Secret name (sent as a Bearer token)'),
        jsonBox(ctx, a, 'map', path, 'Map response to variables', '{"customer_type": "$.customerType"} → vars.customer_type'),
        jsonBox(ctx, a, 'headers', path, 'Headers'), jsonBox(ctx, a, 'body', path, 'Body')];
    case 'run_script':
      return [picked(ctx, a, 'script', path, 'Script', 'scripts', 'script'),
        text(a, 'version', path, 'Version', { type: 'number', number: true, hint: 'empty: the latest version at each run' })];
    default:
      return h('p', { class: 'hint' }, 'Edit this action in the JSON view.');
  }
}

