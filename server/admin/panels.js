// Recent runs (filtered by ticket, rule and outcome), contact groups, and the shared renderers of
// changes, effects and a script's output (also used by the editor's test panel and scripts_view.js).
import { api, listAll, enc } from './api.js';
import { h, clear, $, field, announce, fmtTime, showErrors, clearErrors } from './dom.js';
import { anyHeldRows } from './ruletree.js';
import { fieldLabel, opLabel } from './vocab.js';
import { parseRoute, routeHash } from './router.js';

export function showJson(v) {
  if (v === undefined) return '';
  if (typeof v === 'string') return JSON.stringify(v);
  return JSON.stringify(v);
}

export function renderChanges(changes) {
  const entries = Object.entries(changes || {});
  if (!entries.length) return h('p', { class: 'hint' }, 'No changes.');
  return h('ul', { class: 'changes' }, entries.map(([k, v]) => {
    if (Array.isArray(v)) return h('li', null, h('code', null, k), ': ', showJson(v[0]), ' → ', h('strong', null, showJson(v[1])));
    if (v && typeof v === 'object' && ('added' in v || 'removed' in v)) {
      return h('li', null, h('code', null, k), ': ',
        (v.added || []).length ? ['added ', h('strong', null, v.added.join(', '))] : null,
        (v.added || []).length && (v.removed || []).length ? '; ' : null,
        (v.removed || []).length ? ['removed ', h('strong', null, v.removed.join(', '))] : null);
    }
    return h('li', null, h('code', null, k), ': ', showJson(v));
  }));
}

export function renderEffects(effects) {
  if (!effects || !effects.length) return h('p', { class: 'hint' }, 'No effects.');
  return h('ul', { class: 'effects' }, effects.map((e) => {
    const rest = { ...e };
    delete rest.type;
    return h('li', null, h('strong', null, e.type), ' ', h('code', null, JSON.stringify(rest)));
  }));
}

// ------------------------------------------------------------------ runs

export function renderRuns(view, app) {
  clear(view);
  const f = app.runFilters || (app.runFilters = { ticket: app.lastTicket || '', rule: '', outcome: '' });
  const input = h('input', { type: 'text', id: 'runs-ticket', value: f.ticket, autocomplete: 'off', dataset: { path: 'ticket' } });
  const ruleSel = h('select', { id: 'runs-rule', dataset: { path: 'rule' } }, h('option', { value: '' }, 'any rule'));
  const outcome = h('select', { id: 'runs-outcome', dataset: { path: 'outcome' } },
    [['', 'any outcome'], ['fired', 'a rule fired'], ['errored', 'something erred'], ['suppressed', 'an effect was suppressed']]
      .map(([v, t]) => h('option', { value: v, selected: f.outcome === v }, t)));
  const out = h('div', { id: 'runs-out' });
  const more = h('button', { type: 'button', id: 'runs-more', hidden: true }, 'Show older runs');
  const form = h('form', { class: 'inline-form', novalidate: true, id: 'runs-form', role: 'search' },
    field('Ticket id', input), field('Rule that fired', ruleSel), field('Outcome', outcome),
    h('button', { type: 'submit', class: 'primary' }, 'Show runs'));
  let next = null;
  let shown = 0;
  const list = h('div', { class: 'runs', id: 'runs-list' });
  const rulesById = {};  // to word a run's any_held branches (when the rule is at that revision)

  function query(cursor) {
    const q = new URLSearchParams({ limit: '20' });
    if (f.ticket) q.set('ticket', f.ticket);
    if (f.rule) q.set('rule', f.rule);
    if (f.outcome) q.set('outcome', f.outcome);
    if (cursor) q.set('cursor', cursor);
    return `/v1/runs?${q}`;
  }

  // A page of /v1/runs is bounded by bytes read, so a rare filter can answer few or no items with
  // a `next`: keep reading (up to 10 pages a click) until 20 runs are in hand or the list ends.
  async function fetchRuns(cursor) {
    let items = [];
    let nextCursor = cursor;
    let rounds = 0;
    do {
      const page = await api('GET', query(nextCursor));
      items = items.concat(page.items || []);
      nextCursor = page.next;
      rounds += 1;
    } while (items.length < 20 && nextCursor && rounds < 10);
    return { items, next: nextCursor };
  }

  async function load(cursor) {
    try {
      const page = await fetchRuns(cursor);
      const items = page.items;
      if (!cursor) {
        clear(out);
        if (!items.length && f.ticket) {
          try { await api('GET', `/v1/tickets/${enc(f.ticket)}`); } catch (err) {
            if (err.status === 404) {
              showErrors(form, [{ path: 'ticket', reason: `No ticket ${f.ticket} in this workspace.` }]);
              announce(`No ticket ${f.ticket}.`, 'error');
              return;
            }
          }
        }
        out.append(items.length ? h('p', { class: 'hint' }, 'Newest first.') : h('p', null, page.next ? 'No runs match among the newest; “Show older runs” searches further.' : (f.ticket ? `No runs for ${f.ticket} yet.` : 'No runs match.')), list);
        clear(list);
        shown = 0;
      }
      for (const run of items) list.append(runCard(run, rulesById));
      shown += items.length;
      next = page.next;
      more.hidden = !next;
      announce(`${shown} run${shown === 1 ? '' : 's'} shown${next ? '; older ones follow' : ''}.`);
    } catch (err) {
      clear(out);
      showErrors(form, [{ path: f.ticket ? 'ticket' : '', reason: err.message }]);
      announce(err.message, 'error');
    }
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    clearErrors(form);
    f.ticket = input.value.trim();
    f.rule = ruleSel.value;
    f.outcome = outcome.value;
    app.lastTicket = f.ticket;
    // The filters are part of the view's URL (a reload or a shared link shows the same runs).
    if (!view.hidden && parseRoute(location.hash).view === 'runs') history.replaceState(null, '', routeHash('runs', null, f));
    clear(out).append(h('p', null, 'Loading…'));
    load(null);
  });
  more.addEventListener('click', () => { if (next) load(next); });
  view.append(h('div', { class: 'view-head' }, h('h1', { id: 'runs-h' }, 'Runs')),
    h('p', { class: 'lead' }, 'Every processed event leaves a run: which rules matched, which did not and on what, what scripts returned, logged and fetched, and what changed. Newest first; filter by ticket, by a rule that fired, or by outcome.'),
    form, out, more);
  listAll('/v1/rules').then((rules) => {
    for (const r of rules) {
      rulesById[r.id] = r;
      ruleSel.append(h('option', { value: r.id, selected: f.rule === r.id }, r.name));
    }
  }).catch(() => {}).finally(() => form.requestSubmit());
}

function runCard(run, rulesById = {}) {
  return h('article', { class: 'card run', dataset: { runId: run.id || '' } },
    h('h2', null, fmtTime(run.at), ' · ticket ', h('code', null, run.ticket_id || '?'), ' · event ', h('code', null, run.event_id || '?'), run.event_type ? ` (${run.event_type})` : ''),
    run.error ? h('p', { class: 'error-text' }, 'Error: ', showJson(run.error)) : null,
    h('h3', null, 'Rules'), rulesTable(run.rules || [], rulesById),
    (run.scripts || []).length ? [h('h3', null, 'Scripts'), run.scripts.map(scriptBlock)] : null,
    h('div', { class: 'two' },
      h('div', null, h('h3', null, 'Changes'), renderChanges(run.changes)),
      h('div', null, h('h3', null, 'Effects'), renderEffects(run.effects))),
    (run.suppressed || []).length ? h('p', { class: 'warn' }, `${run.suppressed.length} effect${run.suppressed.length === 1 ? '' : 's'} suppressed: ${run.suppressed[0].reason || ''}`) : null,
    run.timings ? h('p', { class: 'hint' }, `Took ${run.timings.total_ms ?? '?'} ms`, ` · run ${run.id}`) : null);
}

function rulesTable(rules, rulesById) {
  if (!rules.length) return h('p', { class: 'hint' }, 'No rule listens to this event type.');
  return h('table', { class: 'conds' },
    h('thead', null, h('tr', null, ['Rule', 'Matched', 'First failing condition', 'Value seen'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', null, rules.map((r) => h('tr', { class: r.matched ? 'held' : 'not-held' },
      h('td', null, r.name || r.id),
      h('td', { class: 'verdict' }, r.matched ? '✓ matched' : '✗ no'),
      h('td', null, r.failed ? [h('code', null, r.failed.path || ''), ' ', r.failed.op === 'any' ? 'none of the “any” group held'
        : [h('span', { title: `${r.failed.field ?? ''} ${r.failed.op ?? ''}` }, `${fieldLabel(r.failed.field)} ${r.failed.op ? opLabel(r.failed.op, r.failed.field) : ''}`), ` ${showJson(r.failed.value)}`]] : '',
        (r.errors || []).length ? h('div', { class: 'error-text' }, r.errors.join('; ')) : null,
        anyHeld(r, rulesById[r.id])),
      h('td', null, r.failed && r.failed.op !== 'any' ? showJson(r.failed.seen) : '')))));
}

/** Which branch held in each `any` group of the rule (the run record's any_held), worded from the
 *  rule's conditions when the rule is still at the revision that ran, else by path alone. */
function anyHeld(entry, rule) {
  const same = rule && (entry.revision === undefined || rule.revision === entry.revision);
  const rows = anyHeldRows(entry.any_held, same ? rule : null);
  if (!rows.length) return null;
  return h('ul', { class: 'any-held' }, rows.map((row) => h('li', { dataset: { group: row.group, branch: row.branch } },
    'Any-group ', h('code', null, row.group), ' held by ',
    row.ordinal ? `branch ${row.ordinal}${row.of ? ` of ${row.of}` : ''}` : 'branch', ' (', h('code', null, row.branch), ')',
    row.text ? [': ', h('strong', null, row.text)] : null)));
}

export function scriptBlock(s) {
  return h('div', { class: 'script-run' },
    h('p', null, h('strong', null, s.name), s.version ? ` v${s.version}` : '', s.duration_ms != null ? ` · ${s.duration_ms} ms` : '',
      s.error ? h('span', { class: 'error-text' }, ` · ${s.error.code}: ${s.error.message}`) : ''),
    s.updates ? h('p', null, 'Returned: ', h('code', null, JSON.stringify(s.updates))) : null,
    (s.logs || []).length ? h('details', null, h('summary', null, `Logs (${s.logs.length})`), h('pre', null, s.logs.join('\n'))) : null,
    (s.http_calls || []).length ? h('table', { class: 'conds' },
      h('caption', null, 'HTTP calls'),
      h('thead', null, h('tr', null, ['Method', 'URL', 'Status', 'ms'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, s.http_calls.map((c) => h('tr', null, h('td', null, c.method), h('td', null, h('code', null, c.url)),
        h('td', null, c.refused ? `refused: ${c.refused}` : String(c.status ?? '')), h('td', null, String(c.ms ?? c.duration_ms ?? '')))))) : null);
}

// ------------------------------------------------------------------ contact groups

export async function renderGroups(view, app) {
  clear(view);
  const canEdit = app.can('manager');
  const list = h('div', { id: 'groups-list' }, h('p', null, 'Loading…'));
  view.append(h('div', { class: 'view-head' }, h('h1', { id: 'groups-h' }, 'Contact groups')),
    h('p', { class: 'lead' }, 'Segments such as VIP, reseller or trial. Rules and SLA policies condition on them (contact.groups).'),
    list, canEdit ? createGroupForm(app, () => draw()) : null);

  async function draw(focusName) {
    let groups;
    try {
      groups = await listAll('/v1/groups');
    } catch (err) {
      clear(list).append(h('p', { class: 'error-text' }, `Could not load groups: ${err.message}`));
      return;
    }
    clear(list);
    if (!groups.length) { list.append(h('p', null, 'No groups yet.')); return; }
    list.append(h('table', { class: 'groups', id: 'groups-table' },
      h('caption', { class: 'sr-only' }, 'Contact groups'),
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Colour'), h('th', { scope: 'col' }, 'Name'),
        h('th', { scope: 'col' }, 'Description'), h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
      h('tbody', null, groups.map((g) => {
        const sw = h('span', { class: 'swatch', 'aria-hidden': 'true' });
        if (g.color) sw.style.backgroundColor = g.color;
        return h('tr', { dataset: { group: g.name } },
          h('td', null, sw, ' ', h('code', null, g.color || 'none')),
          h('td', null, g.name),
          h('td', null, g.description || ''),
          h('td', null, canEdit ? deleteGroup(g, () => draw()) : null));
      }))));
    if (focusName) list.querySelector(`tr[data-group="${CSS.escape(focusName)}"] td`)?.focus();
  }
  draw();
}

function deleteGroup(g, after) {
  const btn = h('button', { type: 'button', class: 'quiet danger', 'aria-label': `Delete group ${g.name}` }, 'Delete');
  btn.addEventListener('click', async () => {
    if (btn.dataset.armed !== '1') {
      btn.dataset.armed = '1';
      btn.textContent = 'Confirm delete';
      btn.setAttribute('aria-label', `Confirm: delete group ${g.name}`);
      announce(`Press again to delete the group ${g.name}. Contacts keep the name in their groups.`);
      return;
    }
    try {
      await api('DELETE', `/v1/groups/${enc(g.name)}`);
      announce(`Deleted the group ${g.name}.`);
      await after();
      $('#group-name')?.focus();
    } catch (err) {
      announce(`Could not delete: ${err.message}`, 'error');
    }
  });
  return btn;
}

function createGroupForm(app, after) {
  const name = h('input', { type: 'text', id: 'group-name', required: true, dataset: { path: 'name' }, autocomplete: 'off' });
  const color = h('input', { type: 'color', id: 'group-color', value: '#3366cc', dataset: { path: 'color' } });
  const desc = h('input', { type: 'text', id: 'group-desc', dataset: { path: 'description' } });
  const form = h('form', { class: 'card inline-form', id: 'group-form', novalidate: true, 'aria-labelledby': 'new-group-h' },
    h('h2', { id: 'new-group-h' }, 'New group'),
    field('Name', name, 'letters, digits, _ . : -'), field('Colour', color), field('Description (optional)', desc),
    h('button', { type: 'submit', class: 'primary' }, 'Create group'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(form);
    const payload = { name: name.value.trim(), color: color.value };
    if (desc.value.trim()) payload.description = desc.value.trim();
    try {
      const g = await api('POST', '/v1/groups', payload);
      announce(`Created the group ${g.name}.`);
      name.value = '';
      desc.value = '';
      await after();
      name.focus();
    } catch (err) {
      const details = err.details || [{ path: err.status === 409 ? 'name' : '', reason: err.message }];
      const placed = showErrors(form, details);
      announce(`Not created: ${err.message}`, 'error');
      (placed[0]?.target || name).focus();
    }
  });
  return form;
}
