// SLA policies (issue 18 item 6): the list in the order they are tried (▲/▼ saves the order with
// one PUT /v1/sla-policies/order), an editor with targets and a business-hours week (one line of
// windows per day, holidays), each policy's tickets with their targets' states, its history with
// a confirmed restore, and delete. A viewer reads all of it; a manager changes it (docs/api.md).
//   GET/POST /v1/sla-policies, PUT/DELETE /v1/sla-policies/{name}, PUT /v1/sla-policies/order,
//   GET /v1/tickets?sla_policy=<name>
import { api, listAll, enc } from './api.js';
import { h, append, clear, field, announce, showErrors, clearErrors } from './dom.js';
import { historyPanel, showKey, POLICY_KEYS } from './history.js';
import { confirmButton, readOnlyNote, when, NEEDS } from './settings_kit.js';

const DAYS = [['mon', 'Monday'], ['tue', 'Tuesday'], ['wed', 'Wednesday'], ['thu', 'Thursday'], ['fri', 'Friday'], ['sat', 'Saturday'], ['sun', 'Sunday']];
const TARGETS = [['first_response', 'First response'], ['next_response', 'Next response'], ['resolution', 'Resolution']];
const STATE_MARK = { met: '✓', active: '…', warning: '⚠', breached: '✗', paused: '‖' };
const PAGE = 25;

export async function renderSla(view, app) {
  clear(view);
  const canEdit = app.can(NEEDS.ruleWrite);
  const detail = h('div', { id: 'sla-detail' });
  const wrap = h('div', { id: 'sla-table-wrap' }, h('p', null, 'Loading SLA policies…'));
  append(view, [h('div', { class: 'view-head' }, h('h1', { id: 'sla-h' }, 'SLA policies'),
    canEdit ? h('button', { type: 'button', class: 'primary', id: 'new-policy', onclick: () => edit(null) }, 'New policy') : null),
  h('p', { class: 'lead' }, 'Policies are tried top to bottom; the first whose conditions hold applies, unless a rule’s “apply SLA” names one.'),
  readOnlyNote(app, NEEDS.ruleWrite, 'SLA policies'), wrap, detail]);
  let policies;
  try {
    policies = await listAll('/v1/sla-policies');
  } catch (err) {
    clear(wrap).append(h('p', { class: 'error-text' }, `Could not load SLA policies: ${err.message}`));
    return;
  }
  const again = (name, what) => renderSla(view, app).then(() => {
    view.querySelector(`#sla-table tr[data-policy="${CSS.escape(name)}"] button[data-open="${what}"]`)?.click();
  });
  const edit = (p) => {
    clear(detail).append(policyForm(p, canEdit, (saved) => again(saved.name, 'edit')));
    detail.querySelector('input, textarea')?.focus();
  };
  const history = (p) => {
    clear(detail).append(historyPanel(app, p.name, () => again(p.name, 'history'),
      { path: `/v1/sla-policies/${enc(p.name)}`, field: 'policy', keys: POLICY_KEYS }));
    detail.querySelector('h2')?.append(` of “${p.name}”`);
  };
  const tickets = (p) => { clear(detail).append(ticketsPanel(p)); };
  const move = async (i, delta) => {
    const names = policies.map((p) => p.name);
    [names[i], names[i + delta]] = [names[i + delta], names[i]];
    try {
      await api('PUT', '/v1/sla-policies/order', { names });
      announce(`Moved “${names[i + delta]}” to position ${i + delta + 1}.`);
      await renderSla(view, app);
      view.querySelector(`#sla-table tr[data-policy="${CSS.escape(names[i + delta])}"] button[data-move="${delta < 0 ? 'up' : 'down'}"]:not(:disabled)`)?.focus();
    } catch (err) { announce(`Could not reorder: ${err.message}`, 'error'); }
  };
  clear(wrap);
  if (!policies.length) { wrap.append(h('p', null, canEdit ? 'No SLA policies yet. “New policy” creates one.' : 'No SLA policies yet.')); return; }
  wrap.append(h('table', { class: 'rules', id: 'sla-table' },
    h('caption', { class: 'sr-only' }, 'SLA policies in the order they are tried'),
    h('thead', null, h('tr', null, [['#', 'c-order'], ['Name'], ['When'], ['Targets'], ['Business hours', 'c-bh'], ['Revision', 'c-n'], ['', 'c-act']]
      .map(([t, cls]) => h('th', { scope: 'col', class: cls }, t)))),
    h('tbody', null, policies.map((p, i) => h('tr', { dataset: { policy: p.name } },
      h('td', { class: 'c-order' }, String(i + 1), canEdit ? h('span', { class: 'move' },
        h('button', { type: 'button', class: 'icon', 'aria-label': `Move “${p.name}” up`, dataset: { move: 'up' }, disabled: i === 0, onclick: () => move(i, -1) }, '▲'),
        h('button', { type: 'button', class: 'icon', 'aria-label': `Move “${p.name}” down`, dataset: { move: 'down' }, disabled: i === policies.length - 1, onclick: () => move(i, 1) }, '▼')) : null),
      h('td', null, p.name), h('td', null, showKey('conditions', p.conditions)),
      h('td', null, showKey('targets', p.targets), p.warn_before ? h('div', { class: 'hint' }, `warn ${p.warn_before} before`) : null),
      h('td', null, hoursText(p.business_hours)),
      h('td', null, String(p.revision ?? '—')),
      h('td', { class: 'c-act' },
        h('button', { type: 'button', class: 'quiet', dataset: { open: 'edit' }, 'aria-label': `${canEdit ? 'Edit' : 'View'} “${p.name}”`, onclick: () => edit(p) }, canEdit ? 'Edit' : 'View'),
        h('button', { type: 'button', class: 'quiet', dataset: { open: 'tickets' }, 'aria-label': `Tickets of “${p.name}”`, onclick: () => tickets(p) }, 'Tickets'),
        h('button', { type: 'button', class: 'quiet', dataset: { open: 'history' }, 'aria-label': `History of “${p.name}”`, onclick: () => history(p) }, 'History'),
        canEdit ? confirmButton('Delete', `Delete policy ${p.name}`, `Press again to delete the policy ${p.name}.`, async () => {
          try {
            await api('DELETE', `/v1/sla-policies/${enc(p.name)}`);
            announce(`Deleted the policy ${p.name}.`);
            await renderSla(view, app);
          } catch (err) { announce(`Could not delete ${p.name}: ${err.message}`, 'error'); }
        }) : null))))));
}

/** "09:00-12:00, 13:00-17:00" → ["09:00","12:00"] or [["09:00","12:00"],["13:00","17:00"]];
 *  anything unparsable goes as typed, so the API's 422 names the day. */
export function parseWindows(text) {
  const parts = text.split(',').map((s) => s.trim()).filter(Boolean);
  const pairs = parts.map((p) => p.split(/\s*[-–]\s*/));
  if (pairs.some((p) => p.length !== 2)) return text.trim();
  return pairs.length === 1 ? pairs[0] : pairs;
}

/** "Europe/Oslo: mon 09:00-12:00, 13:00-17:00; tue 09:00-17:00; holidays 2026-12-25". */
function hoursText(bh) {
  if (!bh) return '—';
  const week = DAYS.filter(([d]) => (bh.week || {})[d]).map(([d]) => `${d} ${showWindows(bh.week[d])}`).join('; ');
  return `${bh.timezone || 'UTC'}: ${week || 'no hours'}${(bh.holidays || []).length ? `; holidays ${bh.holidays.join(', ')}` : ''}`;
}

function showWindows(raw) {
  if (!Array.isArray(raw) || !raw.length) return '';
  const pairs = Array.isArray(raw[0]) ? raw : [raw];
  return pairs.map((p) => p.join('-')).join(', ');
}

function policyForm(p, canEdit, saved) {
  const isNew = p === null;
  const src = p || { targets: {} };
  const bh = src.business_hours || null;
  const name = isNew ? h('input', { type: 'text', id: 'policy-name', dataset: { path: 'name' }, autocomplete: 'off' }) : null;
  const cond = h('textarea', { id: 'policy-conditions', rows: '3', class: 'code', dataset: { path: 'conditions' }, spellcheck: 'false' });
  cond.value = src.conditions ? JSON.stringify(src.conditions) : '';
  const targets = Object.fromEntries(TARGETS.map(([k]) => [k, h('input', { type: 'text', class: 'short', id: `policy-${k}`, value: (src.targets || {})[k] || '', dataset: { path: `targets.${k}` } })]));
  const warn = h('input', { type: 'text', class: 'short', id: 'policy-warn', value: src.warn_before || '', dataset: { path: 'warn_before' } });
  const pause = h('input', { type: 'checkbox', id: 'policy-pause', checked: !!src.pause_on_pending, dataset: { path: 'pause_on_pending' } });
  const useBh = h('input', { type: 'checkbox', id: 'policy-bh', checked: !!bh });
  const tz = h('input', { type: 'text', id: 'policy-tz', value: (bh && bh.timezone) || 'UTC', list: 'policy-tz-list', dataset: { path: 'business_hours.timezone' }, autocomplete: 'off' });
  const zones = h('datalist', { id: 'policy-tz-list' }, (Intl.supportedValuesOf ? Intl.supportedValuesOf('timeZone') : []).map((z) => h('option', { value: z })));
  const days = Object.fromEntries(DAYS.map(([d]) => [d, h('input', { type: 'text', id: `policy-day-${d}`, value: bh ? showWindows((bh.week || {})[d]) : (['sat', 'sun'].includes(d) ? '' : '09:00-17:00'), placeholder: 'closed', dataset: { path: `business_hours.week.${d}` } })]));
  const holidays = h('textarea', { id: 'policy-holidays', rows: '2', dataset: { path: 'business_hours.holidays' } });
  holidays.value = ((bh && bh.holidays) || []).join('\n');
  const week = h('fieldset', { class: 'bh-week', id: 'policy-week', dataset: { path: 'business_hours.week' } }, h('legend', null, 'Open hours (local time; empty: closed)'),
    h('div', { class: 'bh-days' }, DAYS.map(([d, label]) => field(label, days[d]))));
  const bhBox = h('div', { class: 'bh', hidden: !bh, dataset: { path: 'business_hours' } }, field('Time zone', tz, 'an IANA name like Europe/Oslo'), zones, week,
    field('Holidays (closed all day)', holidays, 'one YYYY-MM-DD per line'));
  useBh.addEventListener('change', () => { bhBox.hidden = !useBh.checked; });
  const summary = h('div', { class: 'error-summary', hidden: true });
  const form = h('form', { class: 'card policy-form', id: 'policy-form', novalidate: true, 'aria-labelledby': 'policy-form-h' },
    h('h2', { id: 'policy-form-h' }, isNew ? 'New SLA policy' : `${canEdit ? 'Edit' : 'Policy'} “${p.name}”`),
    summary,
    isNew ? field('Name', name, 'letters, digits, _ . : -') : null,
    field('Applies when (conditions as JSON; empty: every ticket)', cond, 'the rule editor’s JSON view shows this shape'),
    h('fieldset', { dataset: { path: 'targets' } }, h('legend', null, 'Targets (durations like 15m, 4h, 2d; empty: none)'),
      h('div', { class: 'inline-form' }, TARGETS.map(([k, label]) => field(label, targets[k])), field('Warn before', warn))),
    h('div', { class: 'field check' }, pause, h('label', { for: 'policy-pause' }, 'Pause the clocks while the ticket is pending')),
    h('div', { class: 'field check' }, useBh, h('label', { for: 'policy-bh' }, 'Count business hours only')),
    bhBox,
    canEdit ? h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary' }, isNew ? 'Create policy' : 'Save policy')) : null);
  if (!canEdit) for (const el of form.querySelectorAll('input, textarea')) el.disabled = true;
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(form);
    const spec = {};
    if (!isNew && src.description) spec.description = src.description;
    const problems = [];
    if (cond.value.trim()) {
      try { spec.conditions = JSON.parse(cond.value); } catch (err) { problems.push({ path: 'conditions', reason: `is not JSON: ${err.message}` }); }
    }
    spec.targets = {};
    for (const [k] of TARGETS) if (targets[k].value.trim()) spec.targets[k] = targets[k].value.trim();
    if (warn.value.trim()) spec.warn_before = warn.value.trim();
    if (pause.checked) spec.pause_on_pending = true;
    if (useBh.checked) {
      const weekSpec = {};
      for (const [d] of DAYS) if (days[d].value.trim()) weekSpec[d] = parseWindows(days[d].value);
      spec.business_hours = { timezone: tz.value.trim() || 'UTC', week: weekSpec };
      const hol = holidays.value.split(/[\n,]/).map((s) => s.trim()).filter(Boolean);
      if (hol.length) spec.business_hours.holidays = hol;
    }
    if (problems.length) { showErrors(form, problems, summary); return; }
    try {
      const got = isNew
        ? await api('POST', '/v1/sla-policies', { name: name.value.trim(), ...spec })
        : await api('PUT', `/v1/sla-policies/${enc(p.name)}`, spec);
      announce(`Saved the policy ${got.name} (revision ${got.revision}).`);
      await saved(got);
    } catch (err) {
      const placed = showErrors(form, err.details || [{ path: isNew && err.status === 409 ? 'name' : '', reason: err.message }], summary);
      announce(`Not saved: ${err.message}`, 'error');
      (placed[0]?.target || summary).focus?.();
    }
  });
  return form;
}

function stateCell(t) {
  if (!t) return h('td', { class: 'hint' }, '—');
  const mark = STATE_MARK[t.state] || '';
  return h('td', { class: `sla-state sla-${t.state}`, dataset: { state: t.state || '' } },
    h('strong', null, `${mark} ${t.state || '?'}`),
    t.met_at ? h('div', { class: 'hint' }, 'met ', when(t.met_at)) : t.due_at ? h('div', { class: 'hint' }, 'due ', when(t.due_at)) : null);
}

function ticketsPanel(p) {
  const body = h('tbody');
  const names = TARGETS.filter(([k]) => (p.targets || {})[k]);
  const table = h('table', { class: 'settings', id: 'sla-tickets' },
    h('caption', { class: 'sr-only' }, `Tickets under ${p.name}`),
    h('thead', null, h('tr', null, ['Ticket', 'Subject', 'Status', ...names.map(([, label]) => label)].map((t) => h('th', { scope: 'col' }, t)))), body);
  const note = h('p', { class: 'hint' });
  const more = h('button', { type: 'button', class: 'quiet', hidden: true }, 'More tickets');
  let cursor = null;
  const load = async () => {
    more.disabled = true;
    try {
      const got = await api('GET', `/v1/tickets?sla_policy=${enc(p.name)}&limit=${PAGE}${cursor ? `&cursor=${enc(cursor)}` : ''}`);
      for (const t of got.items || []) {
        const sla = (t.sla || {}).targets || {};
        body.append(h('tr', { dataset: { ticket: t.id } }, h('td', null, h('code', null, t.id)), h('td', null, t.subject || ''),
          h('td', null, t.status || ''), names.map(([k]) => stateCell(sla[k]))));
      }
      cursor = got.next;
      more.hidden = !cursor;
      table.hidden = !body.childElementCount;
      note.textContent = body.childElementCount ? 'Oldest first. ✓ met · … active · ⚠ warning · ✗ breached · ‖ paused.' : `No ticket is under ${p.name}.`;
    } catch (err) {
      note.className = 'error-text';
      note.textContent = `Could not load the tickets: ${err.message}`;
    } finally { more.disabled = false; }
  };
  more.addEventListener('click', load);
  load();
  return h('section', { class: 'card', id: 'sla-tickets-panel', 'aria-labelledby': 'sla-tickets-h' },
    h('h2', { id: 'sla-tickets-h' }, `Tickets under “${p.name}”`), table, note, more);
}
