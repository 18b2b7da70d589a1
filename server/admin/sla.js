// SLA policies: the list in the order they are tried, and each policy's history with a
// confirmed restore (the same history panel as rules). Registered as a view by app.js.
import { listAll, enc } from './api.js';
import { h, clear } from './dom.js';
import { historyPanel, showKey, POLICY_KEYS } from './history.js';

export async function renderSla(view, app) {
  clear(view);
  const detail = h('div', { id: 'sla-detail' });
  const wrap = h('div', { id: 'sla-table-wrap' }, h('p', null, 'Loading SLA policies…'));
  view.append(h('div', { class: 'view-head' }, h('h1', { id: 'sla-h' }, 'SLA policies')),
    h('p', { class: 'lead' }, 'Policies are tried top to bottom; the first whose conditions hold applies, unless a rule’s “apply SLA” names one.'),
    wrap, detail);
  let policies;
  try {
    policies = await listAll('/v1/sla-policies');
  } catch (err) {
    clear(wrap).append(h('p', { class: 'error-text' }, `Could not load SLA policies: ${err.message}`));
    return;
  }
  clear(wrap);
  if (!policies.length) { wrap.append(h('p', null, 'No SLA policies yet.')); return; }
  const show = (p) => {
    clear(detail).append(historyPanel(app, p.name, () => renderSla(view, app).then(() => {
      const again = view.querySelector(`tr[data-policy="${CSS.escape(p.name)}"] button`);
      again?.click();
    }), { path: `/v1/sla-policies/${enc(p.name)}`, field: 'policy', keys: POLICY_KEYS }));
    detail.querySelector('h2')?.append(` of “${p.name}”`);
  };
  wrap.append(h('table', { class: 'rules', id: 'sla-table' },
    h('caption', { class: 'sr-only' }, 'SLA policies in the order they are tried'),
    h('thead', null, h('tr', null, ['#', 'Name', 'When', 'Targets', 'Business hours', 'Revision', ''].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', null, policies.map((p, i) => h('tr', { dataset: { policy: p.name } },
      h('td', null, String(i + 1)), h('td', null, p.name), h('td', null, showKey('conditions', p.conditions)),
      h('td', null, showKey('targets', p.targets)), h('td', null, showKey('business_hours', p.business_hours)),
      h('td', null, String(p.revision ?? '—')),
      h('td', null, h('button', { type: 'button', class: 'quiet', 'aria-label': `History of “${p.name}”`, onclick: () => show(p) }, 'History')))))));
}
