// A rule's history: every revision (who, when, what changed as a readable diff) and restore with a
// confirmation. `revisionDiff` is pure (tests/web/test_admin_history.py calls it in the page).
import { api, enc } from './api.js';
import { h, clear, announce, fmtTime } from './dom.js';
import { summarizeConditions, summarizeActions, TRIGGER_LABELS } from './vocab.js';

// What a revision says, in the order a manager reads a rule; bookkeeping keys are left out.
const SAID = ['name', 'enabled', 'triggers', 'conditions', 'actions', 'stop', 'description'];
// An SLA policy's keys (the same panel shows a policy's history).
export const POLICY_KEYS = ['name', 'conditions', 'targets', 'warn_before', 'business_hours', 'description'];
const LABELS = { name: 'Name', enabled: 'Enabled', triggers: 'Triggers', conditions: 'When',
  actions: 'Then', stop: 'Stop after firing', description: 'Description', position: 'Position',
  targets: 'Targets', warn_before: 'Warn before', business_hours: 'Business hours' };
const TARGETS = { first_response: 'first response', next_response: 'next response', resolution: 'resolution' };
const ACTIONS = { create: 'created', update: 'edited', rename: 'renamed', enable: 'enabled',
  disable: 'disabled', reorder: 'moved', delete: 'deleted', restore: 'restored', publish: 'published a draft' };

/** How one key of a rule reads to a person. */
export function showKey(key, value) {
  if (value === undefined || value === null || value === '') return key === 'conditions' ? 'always' : '—';
  if (key === 'enabled' || key === 'stop') return value ? 'yes' : 'no';
  if (key === 'triggers') return value.map((t) => TRIGGER_LABELS[t] || t).join(', ');
  if (key === 'conditions') return summarizeConditions(value);
  if (key === 'actions') return summarizeActions(value);
  if (key === 'targets' && typeof value === 'object') return Object.entries(value).map(([k, v]) => `${TARGETS[k] || k} ${v}`).join(', ');
  if (key === 'business_hours' && typeof value === 'object') {
    const week = Object.entries(value.week || {}).map(([d, span]) => `${d} ${Array.isArray(span) ? span.join('–') : span}`).join(', ');
    return `${value.timezone || 'UTC'}: ${week || 'no hours'}${(value.holidays || []).length ? `; holidays ${value.holidays.join(', ')}` : ''}`;
  }
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** [{key, label, before, after}] for each key whose meaning differs between two rule versions
 *  (`before` null: the first revision, every key it says is listed as added). A reorder
 *  revision's only change is its position. */
export function revisionDiff(before, after, said = SAID) {
  const out = [];
  const keys = [...said, 'position'];
  for (const key of keys) {
    const a = before ? before[key] : undefined;
    const b = after ? after[key] : undefined;
    if (key === 'position' && (!before || !after)) continue;
    if (JSON.stringify(a ?? null) === JSON.stringify(b ?? null)) continue;
    if (!before && (b === undefined || b === null)) continue;
    out.push({ key, label: LABELS[key], before: before ? showKey(key, a) : null, after: showKey(key, b) });
  }
  return out;
}

/** The history panel of a rule (or, with `kind` {path, field: 'policy', keys: POLICY_KEYS}, of
 *  an SLA policy): newest first, each revision with its diff against the one before; managers
 *  get "Restore" (press twice to confirm). */
export function historyPanel(app, ruleId, onRestored, kind = null) {
  const canEdit = app.can('manager');
  const base = kind ? kind.path : `/v1/rules/${enc(ruleId)}`;
  const field = kind ? kind.field : 'rule';
  const said = kind ? kind.keys : SAID;
  const what = kind ? 'policy' : 'rule';
  const panel = h('section', { class: 'card history', id: 'history-panel', 'aria-labelledby': 'history-h' });
  const list = h('ol', { class: 'revisions', id: 'revisions' });
  panel.append(h('h2', { id: 'history-h' }, 'History'),
    h('p', { class: 'hint' }, `Every change is a revision. Restoring makes the ${what} say again what that revision said, as a new revision.`),
    list);

  async function load() {
    clear(list).append(h('li', { class: 'hint' }, 'Loading history…'));
    let items = [];
    try {
      for (let cursor = null, i = 0; i < 20; i += 1) {
        const page = await api('GET', `${base}/revisions?limit=100${cursor ? `&cursor=${enc(cursor)}` : ''}`);
        items.push(...(page.items || []));
        if (!page.next) break;
        cursor = page.next;
      }
    } catch (err) {
      clear(list).append(h('li', { class: 'error-text' }, `Could not load the history: ${err.message}`));
      return;
    }
    items = items.sort((x, y) => y.n - x.n);
    clear(list);
    items.forEach((rev, i) => list.append(revisionItem(rev, items[i + 1] || null, items[0].n)));
    if (!items.length) list.append(h('li', { class: 'hint' }, 'No revisions recorded.'));
  }

  function revisionItem(rev, older, latest) {
    const diff = revisionDiff(older ? older[field] : null, rev[field], said);
    const who = rev.by?.key_name || rev.by?.key_id || 'someone';
    const from = rev.restored_from ? ` (from revision ${rev.restored_from})` : '';
    return h('li', { class: 'revision', dataset: { n: String(rev.n) } },
      h('div', { class: 'rev-head' },
        h('strong', null, `Revision ${rev.n}`), ' · ', `${who} ${ACTIONS[rev.action] || rev.action}${from}`, ' · ',
        h('time', { datetime: rev.at }, fmtTime(rev.at)),
        rev.n === latest ? h('span', { class: 'badge' }, 'current') : null),
      diff.length ? h('table', { class: 'diff' },
        h('caption', { class: 'sr-only' }, `What revision ${rev.n} changed`),
        h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'What'), h('th', { scope: 'col' }, 'Before'), h('th', { scope: 'col' }, 'After'))),
        h('tbody', null, diff.map((d) => h('tr', { dataset: { key: d.key } },
          h('th', { scope: 'row' }, d.label),
          h('td', { class: 'before' }, d.before === null ? '' : h('del', null, d.before)),
          h('td', { class: 'after' }, h('ins', null, d.after))))))
        : h('p', { class: 'hint' }, 'No change to what the rule says.'),
      canEdit && rev.n !== latest && rev.action !== 'delete' ? restoreButton(rev) : null);
  }

  function restoreButton(rev) {
    const label = `Restore revision ${rev.n}`;
    const btn = h('button', { type: 'button', class: 'quiet', 'aria-label': label }, 'Restore');
    btn.addEventListener('click', async () => {
      if (btn.dataset.armed !== '1') {
        btn.dataset.armed = '1';
        btn.textContent = 'Confirm restore';
        btn.setAttribute('aria-label', `Confirm: restore revision ${rev.n}`);
        announce(`Press again to make the ${what} say what revision ${rev.n} said.`);
        setTimeout(() => { if (btn.isConnected) { btn.dataset.armed = ''; btn.textContent = 'Restore'; btn.setAttribute('aria-label', label); } }, 6000);
        return;
      }
      btn.disabled = true;
      try {
        const rule = await api('POST', `${base}/revisions/${rev.n}/restore`);
        announce(`Restored revision ${rev.n}: the ${what} is now at revision ${rule.revision}.`);
        onRestored?.(rule);
        await load();
      } catch (err) {
        btn.disabled = false;
        announce(`Could not restore: ${err.message}`, 'error');
      }
    });
    return btn;
  }

  load();
  panel.reload = load;
  return panel;
}
