// "Backtest before you publish": the rule as it stands in the editor, checked against the
// workspace's last N processed events (POST /v1/rules/backtest). Shows on how many it would have
// fired, the tickets and what it would have changed, and conflicts with the rules that did fire.
import { api } from './api.js';
import { h, clear, field, announce, fmtTime, showErrors, clearErrors } from './dom.js';
import { renderChanges } from './panels.js';

export function backtestPanel(getRule, ruleId, rulesById) {
  const panel = h('section', { class: 'card backtest', id: 'backtest-panel', 'aria-labelledby': 'backtest-h' });
  const limit = h('input', { type: 'number', id: 'backtest-limit', min: '1', max: '1000', value: '500', dataset: { path: 'limit' } });
  const result = h('div', { id: 'backtest-result', 'aria-live': 'polite' });
  const errors = h('div', { class: 'error-summary', hidden: true });
  const run = h('button', { type: 'button', class: 'primary', id: 'run-backtest' }, 'Run backtest');
  panel.append(h('h2', { id: 'backtest-h' }, 'Backtest'),
    h('p', { class: 'hint' }, 'The rule as it stands in the form (saved or not), checked against the workspace’s last processed events: on which it would have fired, what it would have changed, and where it works against a rule that did fire. Nothing is applied and no script or HTTP call runs.'),
    errors,
    h('div', { class: 'inline-form' }, field('Events to check (up to 1000)', limit), run),
    result);

  run.addEventListener('click', async () => {
    clearErrors(panel);
    errors.hidden = true;
    const n = Number(limit.value);
    if (!Number.isInteger(n) || n < 1 || n > 1000) {
      showErrors(panel, [{ path: 'limit', reason: 'Enter a whole number from 1 to 1000.' }]);
      limit.focus();
      return;
    }
    const req = { rule: getRule(), limit: n };
    if (ruleId) req.rule_id = ruleId;
    run.disabled = true;
    clear(result).append(h('p', null, 'Checking…'));
    try {
      const out = await api('POST', '/v1/rules/backtest', req);
      clear(result).append(summary(out, rulesById));
      announce(`Backtest: would have fired on ${out.fired} of ${out.checked} events; ${out.conflicts_total} conflict${out.conflicts_total === 1 ? '' : 's'}.`);
    } catch (err) {
      clear(result);
      showErrors(panel, err.details?.length ? err.details : [{ path: '', reason: err.message }], errors);
      announce(`Backtest failed: ${err.message}`, 'error');
    } finally {
      run.disabled = false;
    }
  });
  return panel;
}

function summary(out, rulesById) {
  const notes = [];
  if (out.truncated) notes.push(`Stopped at the time limit (${out.limits?.time_budget_s ?? '?'} s): these are the newest ${out.checked} events.`);
  for (const [why, n] of Object.entries(out.skipped || {})) if (n) notes.push(`${n} event${n === 1 ? '' : 's'} skipped: ${why === 'trimmed' ? 'the run record was trimmed for size' : why === 'expired' ? 'the run record has expired' : why}.`);
  for (const [why, n] of Object.entries(out.approximate || {})) if (n) notes.push(`${n} event${n === 1 ? '' : 's'} approximate: ${why}.`);
  const name = (c) => c.rule?.name || rulesById?.[c.rule?.id]?.name || c.rule?.id;
  return h('div', { class: 'backtest-out' },
    h('p', { class: 'counts', id: 'backtest-counts' },
      h('strong', null, `Would have fired on ${out.fired} of ${out.checked} events`),
      ` (${new Set((out.hits || []).map((x) => x.ticket_id)).size} ticket${new Set((out.hits || []).map((x) => x.ticket_id)).size === 1 ? '' : 's'} shown)`,
      out.conflicts_total ? h('span', { class: 'badge conflict' }, `${out.conflicts_total} conflict${out.conflicts_total === 1 ? '' : 's'}`) : null),
    notes.length ? h('ul', { class: 'hint' }, notes.map((t) => h('li', null, t))) : null,
    out.conflicts?.length ? [h('h3', null, 'Conflicts with rules that fired'),
      h('table', { class: 'conflicts', id: 'backtest-conflicts' },
        h('thead', null, h('tr', null, ['Ticket', 'Event', 'Rule that fired', 'Field', 'This rule', 'That rule'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', null, out.conflicts.map((c) => h('tr', null,
          h('td', null, c.ticket_id), h('td', null, h('code', null, c.event_id)), h('td', null, name(c)),
          h('td', null, h('code', null, c.field)), h('td', null, String(c.this)), h('td', null, String(c.other)))))),
    ] : null,
    h('h3', null, 'Where it would have fired'),
    out.hits?.length ? h('table', { class: 'hits', id: 'backtest-hits' },
      h('thead', null, h('tr', null, ['When', 'Ticket', 'Event', 'What it would change'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, out.hits.map((x) => h('tr', null,
        h('td', null, fmtTime(x.at)), h('td', null, x.ticket_id), h('td', null, h('code', null, x.event_id), ' ', h('span', { class: 'hint' }, x.event_type || '')),
        h('td', null, renderChanges(x.changes))))))
      : h('p', null, 'Nowhere among these events.'));
}
