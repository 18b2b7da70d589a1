// The managers' page: the rules list (search, filters, rename, enable, delete, reorder by drag or
// by the arrow buttons). The page's sign-in, tabs and routing are app.js, which shows this list
// as the Rules view; the editor is editor.js.
import { api, listAll, enc } from './api.js';
import { h, clear, announce, fmtTime, showErrors, $ } from './dom.js';
import { summarizeConditions, summarizeActions, ruleFieldNames, TRIGGER_LABELS } from './vocab.js';
import { wireReorder } from './order.js';
import { app, HOOKS, showEditor, focusRule } from './app.js';

export async function renderRules(view) {
  clear(view);
  const canEdit = app.can('manager');
  view.append(
    h('div', { class: 'view-head' },
      h('h1', { id: 'rules-h' }, 'Rules'),
      canEdit ? h('button', { type: 'button', class: 'primary', id: 'new-rule', onclick: () => showEditor(null) }, 'New rule') : null),
    h('p', { class: 'lead' }, 'Rules run top to bottom on every event; each sees the ticket as the rules above left it.',
      canEdit ? '' : ' Your key is read-only: you can look, not change.'),
    h('div', { class: 'filters', role: 'search' },
      h('label', { for: 'rule-search' }, 'Search rules'),
      h('input', { id: 'rule-search', type: 'search', value: app.query, placeholder: 'name, trigger, condition, action…',
        oninput: (e) => { app.query = e.target.value; drawTable(); } }),
      h('label', { for: 'rule-show' }, 'Show'),
      h('select', { id: 'rule-show', onchange: (e) => { app.show = e.target.value; drawTable(); } },
        h('option', { value: 'all', selected: app.show === 'all' }, 'all rules'),
        h('option', { value: 'enabled', selected: app.show === 'enabled' }, 'enabled only'),
        h('option', { value: 'disabled', selected: app.show === 'disabled' }, 'disabled only'),
        h('option', { value: 'unused', selected: app.show === 'unused' }, 'unused for 30 days')),
      h('span', { id: 'rule-count', class: 'hint', 'aria-live': 'polite' }),
      h('span', { id: 'reorder-hint', class: 'hint', hidden: true }, 'Clear the search and filter to reorder.'),
      h('span', { id: 'reorder-help', class: 'sr-only' }, 'Drag the row, or press Space to pick it up, the arrow keys to move it, Space to drop it and Escape to cancel.')),
    h('div', { id: 'rules-table-wrap' }, h('p', null, 'Loading rules…')),
    h('p', { class: 'hint' }, '“Last fired”, “24 h” and “30 d” come from the API when it reports them; a dash means it does not. ',
      '“Unused 30 d” marks a rule older than 30 days that has not fired in them.'));
  try {
    const [rules, unused] = await Promise.all([listAll('/v1/rules'), listAll('/v1/rules?unused_for=30d').catch(() => [])]);
    app.rules = rules;
    app.unused = new Set(unused.map((r) => r.id));
  } catch (err) {
    clear($('#rules-table-wrap')).append(h('p', { class: 'error-text' }, `Could not load rules: ${err.message}`));
    return;
  }
  drawTable();
}

function visibleRules() {
  const q = app.query.trim().toLowerCase();
  return app.rules.filter((r) => {
    if (app.show === 'enabled' && !r.enabled) return false;
    if (app.show === 'disabled' && r.enabled) return false;
    if (app.show === 'unused' && !app.unused.has(r.id)) return false;
    if (!q) return true;
    const hay = [r.name, r.id, ...(r.triggers || []), summarizeConditions(r.conditions), summarizeActions(r.actions), ...ruleFieldNames(r)]
      .join(' ').toLowerCase();
    return hay.includes(q);
  });
}

function drawTable() {
  const wrap = $('#rules-table-wrap');
  if (!wrap) return;
  const canEdit = app.can('manager');
  const rules = visibleRules();
  const filtered = rules.length !== app.rules.length || app.query.trim() !== '' || app.show !== 'all';
  $('#reorder-hint').hidden = !(canEdit && filtered);
  $('#rule-count').textContent = `${rules.length} of ${app.rules.length} rule${app.rules.length === 1 ? '' : 's'}`;
  clear(wrap);
  if (!app.rules.length) {
    wrap.append(h('p', null, canEdit ? 'No rules yet. “New rule” creates one.' : 'No rules yet.'));
    return;
  }
  const table = h('table', { class: 'rules', id: 'rules-table' },
    h('caption', { class: 'sr-only' }, 'Rules in evaluation order'),
    h('thead', null, h('tr', null,
      h('th', { scope: 'col', class: 'c-order' }, '#'),
      h('th', { scope: 'col', class: 'c-on' }, 'Enabled'),
      h('th', { scope: 'col', class: 'c-name' }, 'Name'),
      h('th', { scope: 'col', class: 'c-trig' }, 'Triggers'),
      h('th', { scope: 'col' }, 'When → then'),
      h('th', { scope: 'col', class: 'c-fired' }, 'Last fired'),
      h('th', { scope: 'col', class: 'c-n' }, '24 h'),
      h('th', { scope: 'col', class: 'c-n' }, '30 d'),
      h('th', { scope: 'col', class: 'c-act' }, h('span', { class: 'sr-only' }, 'Actions')))));
  const body = h('tbody');
  for (const rule of rules) body.append(ruleRow(rule, canEdit, !filtered));
  table.append(body);
  wrap.append(table);
  for (const hook of HOOKS.table) hook(body, rules);
  if (canEdit && !filtered) {
    wireReorder(body, app.rules, dropOrder, (id) => { drawTable(); if (id) focusHandle(id); });
  }
}

function focusHandle(id) {
  $(`#view-rules tr[data-rule-id="${CSS.escape(id)}"] button.drag`)?.focus();
}

/** One PUT /v1/rules/order for a drop (drag or keyboard). */
async function dropOrder(ids, rule, position) {
  try {
    const result = await api('PUT', '/v1/rules/order', { ids });
    app.rules = result.items;
    drawTable();
    announce(`Moved “${rule.name}” to position ${position}.`);
  } catch (err) {
    drawTable();
    announce(`Could not reorder: ${err.message}`, 'error');
  }
  focusHandle(rule.id);
}

function ruleRow(rule, canEdit, canMove) {
  const index = app.rules.indexOf(rule);
  const when = summarizeConditions(rule.conditions);
  const then = summarizeActions(rule.actions);
  const toggleId = `toggle-${rule.id}`;
  const toggle = h('input', {
    type: 'checkbox', role: 'switch', id: toggleId, class: 'switch', checked: !!rule.enabled,
    'aria-label': `Enabled: ${rule.name}`, disabled: !canEdit,
    title: canEdit ? (rule.enabled ? 'Enabled — click to disable' : 'Disabled — click to enable') : 'Your key is read-only',
    onchange: (e) => toggleRule(rule, e.target),
  });
  const fired = rule.last_fired_at ? fmtTime(rule.last_fired_at) : '—';
  const count = rule.fired_24h ?? rule.fires_24h ?? rule.stats?.fired_24h;
  const fires = rule.usage?.fired;
  const usageTitle = fires ? `Fired: ${fires['1h']} in the last hour, ${fires['24h']} in 24 h, ${fires['7d']} in 7 days, ${fires['30d']} in 30 days` : '';
  return h('tr', { dataset: { ruleId: rule.id }, class: rule.enabled ? 'on' : 'off' },
    h('td', { class: 'c-order' },
      canEdit && canMove ? h('button', { type: 'button', class: 'icon quiet drag', 'aria-label': `Reorder “${rule.name}”`,
        'aria-pressed': 'false', 'aria-describedby': 'reorder-help', title: 'Drag to move; or press Space, then the arrow keys, then Space' }, '⠿') : null,
      h('span', { class: 'pos' }, String(index + 1)),
      canEdit && canMove ? h('span', { class: 'move' },
        h('button', { type: 'button', class: 'icon', 'aria-label': `Move “${rule.name}” up`, disabled: index === 0,
          dataset: { move: 'up' }, onclick: () => moveRule(rule, -1, 'up') }, '▲'),
        h('button', { type: 'button', class: 'icon', 'aria-label': `Move “${rule.name}” down`, disabled: index === app.rules.length - 1,
          dataset: { move: 'down' }, onclick: () => moveRule(rule, 1, 'down') }, '▼')) : null),
    h('td', { class: 'c-on' }, toggle, h('label', { for: toggleId, class: 'switch-text', 'aria-hidden': 'true' }, rule.enabled ? 'On' : 'Off')),
    h('td', { class: 'c-name' }, nameCell(rule, canEdit)),
    h('td', { class: 'c-trig' }, (rule.triggers || []).map((t) => h('span', { class: 'chip', title: t }, TRIGGER_LABELS[t] || t))),
    h('td', { class: 'c-sum' },
      h('div', { class: 'sum', title: `When ${when}` }, h('span', { class: 'k' }, 'When '), when),
      h('div', { class: 'sum', title: `Then ${then}` }, h('span', { class: 'k' }, 'Then '), then)),
    h('td', { class: 'c-fired' }, fired),
    h('td', { class: 'c-n', title: usageTitle }, count === undefined || count === null ? '—' : String(count)),
    h('td', { class: 'c-n', title: usageTitle }, fires ? String(fires['30d']) : '—'),
    h('td', { class: 'c-act' },
      h('button', { type: 'button', class: 'quiet', 'aria-label': `${canEdit ? 'Edit' : 'View'} “${rule.name}”`,
        onclick: () => showEditor(rule) }, canEdit ? 'Edit' : 'View'),
      canEdit ? h('button', { type: 'button', class: 'quiet', 'aria-label': `Test “${rule.name}”`,
        onclick: () => showEditor(rule, { focusTest: true }) }, 'Test') : null,
      canEdit ? deleteButton(rule) : null));
}

function nameCell(rule, canEdit) {
  const cell = h('div', { class: 'name-cell' },
    h('span', { class: 'rule-name-text' }, rule.name),
    app.unused.has(rule.id) ? h('span', { class: 'badge unused', title: 'Older than 30 days and has not fired in them' }, 'Unused 30 d') : null,
    canEdit ? h('button', { type: 'button', class: 'icon quiet', 'aria-label': `Rename “${rule.name}”`, title: 'Rename',
      onclick: () => startRename(cell, rule) }, '✎') : null);
  return cell;
}

function startRename(cell, rule) {
  clear(cell);
  const input = h('input', { type: 'text', value: rule.name, 'aria-label': `New name for “${rule.name}”`, dataset: { path: 'name' }, class: 'rename' });
  const save = async () => {
    const name = input.value.trim();
    if (name === rule.name) { cancel(); return; }
    input.disabled = true;
    try {
      const updated = await api('PATCH', `/v1/rules/${enc(rule.id)}`, { name });
      Object.assign(rule, updated);
      announce(`Renamed to “${updated.name}”.`);
      drawTable();
      focusRule(rule.id);
    } catch (err) {
      input.disabled = false;
      showErrors(cell, err.details || [{ path: 'name', reason: err.message }]);
      announce(`Could not rename: ${err.message}`, 'error');
      input.focus();
    }
  };
  const cancel = () => { drawTable(); focusRule(rule.id); };
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') { e.preventDefault(); save(); }
    if (e.key === 'Escape') { e.preventDefault(); cancel(); }
  });
  cell.append(h('div', { class: 'field errors-here' }, input),
    h('button', { type: 'button', class: 'quiet', onclick: save }, 'Save'),
    h('button', { type: 'button', class: 'quiet', onclick: cancel }, 'Cancel'));
  input.focus();
  input.select();
}

function deleteButton(rule) {
  const btn = h('button', { type: 'button', class: 'quiet danger', 'aria-label': `Delete “${rule.name}”` }, 'Delete');
  btn.addEventListener('click', async () => {
    if (btn.dataset.armed !== '1') {
      btn.dataset.armed = '1';
      btn.textContent = 'Confirm delete';
      btn.setAttribute('aria-label', `Confirm: delete “${rule.name}”`);
      announce(`Press again to delete “${rule.name}”.`);
      setTimeout(() => { if (btn.isConnected) { btn.dataset.armed = ''; btn.textContent = 'Delete'; btn.setAttribute('aria-label', `Delete “${rule.name}”`); } }, 5000);
      return;
    }
    try {
      await api('DELETE', `/v1/rules/${enc(rule.id)}`);
      app.rules = app.rules.filter((r) => r !== rule);
      announce(`Deleted “${rule.name}”.`);
      drawTable();
      $('#rule-search')?.focus();
    } catch (err) {
      announce(`Could not delete: ${err.message}`, 'error');
    }
  });
  return btn;
}

async function toggleRule(rule, input) {
  const want = input.checked;
  input.disabled = true;
  const label = input.parentElement.querySelector('.switch-text');
  try {
    const updated = await api('POST', `/v1/rules/${enc(rule.id)}/${want ? 'enable' : 'disable'}`);
    Object.assign(rule, updated);
    input.checked = !!updated.enabled;
    input.closest('tr').className = updated.enabled ? 'on' : 'off';
    if (label) label.textContent = updated.enabled ? 'On' : 'Off';
    input.title = updated.enabled ? 'Enabled — click to disable' : 'Disabled — click to enable';
    announce(`“${rule.name}” ${updated.enabled ? 'enabled' : 'disabled'}; it applies from the next event.`);
  } catch (err) {
    input.checked = !want;
    announce(`Could not ${want ? 'enable' : 'disable'} “${rule.name}”: ${err.message}`, 'error');
  } finally {
    input.disabled = false;
    input.focus();
  }
}

async function moveRule(rule, delta, dir) {
  const i = app.rules.indexOf(rule);
  const j = i + delta;
  if (i < 0 || j < 0 || j >= app.rules.length) return;
  const ids = app.rules.map((r) => r.id);
  [ids[i], ids[j]] = [ids[j], ids[i]];
  try {
    const result = await api('PUT', '/v1/rules/order', { ids });
    app.rules = result.items;
    drawTable();
    announce(`Moved “${rule.name}” to position ${j + 1}.`);
    const btn = $(`#view-rules tr[data-rule-id="${CSS.escape(rule.id)}"] button[data-move="${dir}"]`);
    const other = $(`#view-rules tr[data-rule-id="${CSS.escape(rule.id)}"] button[data-move="${dir === 'up' ? 'down' : 'up'}"]`);
    (btn && !btn.disabled ? btn : other)?.focus();
  } catch (err) {
    announce(`Could not reorder: ${err.message}`, 'error');
  }
}

