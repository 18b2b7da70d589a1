// The editor's test panel: a dry run of the saved rule (or its draft) on an event pasted or built
// from a stored ticket; every condition with whether it held and what it saw. Applies nothing.
import { api, enc } from './api.js';
import { h, clear, $, field, announce, showErrors, clearErrors } from './dom.js';
import { fieldLabel, opLabel } from './vocab.js';
import { renderChanges, renderEffects, showJson } from './panels.js';
import { sampleEvent } from './rulebody.js';

/** Draw the dry-run test panel of the editor's rule (or of its draft, when it has one) into
 *  `testPanel`. `dirty()` says whether the form has unsaved changes. */
export function drawTestPanel(testPanel, ed, dirty) {
  if (!testPanel) return;
  clear(testPanel);
  testPanel.append(h('h2', { id: 'test-h', tabindex: '-1' }, 'Test this rule'),
    h('p', { class: 'hint' }, 'A dry run of the saved rule on an event you paste: every condition is shown with whether it held and the value it saw, and the changes the rule would make. Nothing is applied.'));
  if (!ed.draft.id) {
    testPanel.append(h('p', null, 'Save the rule first (a disabled draft is fine), then test it here.'));
    return;
  }
  const area = h('textarea', { id: 'test-event', rows: '10', class: 'code', spellcheck: 'false', dataset: { path: 'event' },
    value: JSON.stringify(sampleEvent(ed.draft), null, 2) });
  const prev = h('textarea', { id: 'test-ticket', rows: '4', class: 'code', spellcheck: 'false', dataset: { path: 'ticket' }, value: '' });
  const result = h('div', { id: 'test-result', 'aria-live': 'polite' });
  const pickId = h('input', { type: 'text', id: 'test-pick', autocomplete: 'off', dataset: { path: 'pick' } });
  const errors = h('div', { class: 'error-summary', hidden: true });
  testPanel.append(errors,
    field('Event (JSON)', area, 'Prefilled from the rule’s conditions; paste a real event to try it.'),
    h('details', null, h('summary', null, 'Ticket before the event (optional)'),
      field('Previous ticket (JSON)', prev, 'Empty: the stored ticket of the event’s ticket id, if any. Used by “changed” conditions.')),
    h('div', { class: 'buttons' },
      h('button', { type: 'button', id: 'run-test', class: 'primary', onclick: run }, 'Run test'),
      h('button', { type: 'button', class: 'quiet', onclick: () => { area.value = JSON.stringify(sampleEvent(ed.draft), null, 2); } }, 'Reset sample')),
    h('details', null, h('summary', null, 'Start from a real ticket'),
      h('div', { class: 'inline-form' },
        field('Ticket id', pickId, 'Builds an event from the ticket as deskflow holds it now.'),
        h('button', { type: 'button', id: 'pick-ticket', onclick: pick }, 'Use this ticket'))),
    result);

  async function pick() {
    clearErrors(testPanel);
    const id = pickId.value.trim();
    if (!id) { showErrors(testPanel, [{ path: 'pick', reason: 'Enter a ticket id, like T-1.' }]); pickId.focus(); return; }
    try {
      const t = await api('GET', `/v1/tickets/${enc(id)}`);
      const ticket = {};
      for (const k of ['id', 'subject', 'description', 'status', 'priority', 'channel', 'department', 'assignee', 'tags', 'custom', 'contact']) {
        if (t[k] !== undefined) ticket[k] = t[k];
      }
      const ev = sampleEvent(ed.draft);
      ev.ticket = ticket;
      area.value = JSON.stringify(ev, null, 2);
      announce(`Loaded ticket ${id} into the event.`);
      area.focus();
    } catch (err) {
      showErrors(testPanel, [{ path: 'pick', reason: err.status === 404 ? `No ticket ${id} in this workspace.` : err.message }]);
      pickId.focus();
    }
  }

  async function run() {
    clearErrors(testPanel);
    errors.hidden = true;
    const req = {};
    try { req.event = JSON.parse(area.value); } catch (err) {
      showErrors(testPanel, [{ path: 'event', reason: `is not valid JSON: ${err.message}` }], errors); area.focus(); return;
    }
    if (prev.value.trim()) {
      try { req.ticket = JSON.parse(prev.value); } catch (err) {
        showErrors(testPanel, [{ path: 'ticket', reason: `is not valid JSON: ${err.message}` }], errors); prev.focus(); return;
      }
    }
    clear(result).append(h('p', null, 'Running…'));
    try {
      const out = await api('POST', `/v1/rules/${enc(ed.draft.id)}/${ed.draftOf ? 'draft/test' : 'test'}`, req);
      clear(result).append(testResult(out, dirty(), ed));
      announce(`Test: the rule ${out.matched ? 'matched' : 'did not match'}.`);
    } catch (err) {
      clear(result);
      showErrors(testPanel, err.details || [{ path: '', reason: err.message }], errors);
      announce(`Test failed: ${err.message}`, 'error');
    }
  }
}

function testResult(out, wasDirty, ed) {
  const rule = out.rule || {};
  const conds = rule.conditions || [];
  const rows = conds.map((c) => h('tr', { class: c.held ? 'held' : 'not-held' },
    h('td', null, h('code', null, c.path)), h('td', { title: c.field ? `API name: ${c.field}` : null }, fieldLabel(c.field)),
    h('td', { title: c.op ? `API name: ${c.op}` : null }, opLabel(c.op, c.field)),
    h('td', null, 'value' in c ? showJson(c.value) : ''),
    h('td', { class: 'verdict' }, c.held ? '✓ held' : '✗ did not hold'),
    h('td', null, showJson(c.seen))));
  return h('div', { class: `test-out ${out.matched ? 'matched' : 'unmatched'}` },
    wasDirty ? h('p', { class: 'warn' }, `You have unsaved changes: this tested the saved ${ed.draftOf ? 'draft' : 'version'}.`) : null,
    ed.draftOf ? h('p', { class: 'hint', id: 'test-of-draft' }, 'Tested: the draft (the live rule is not what ran).') : null,
    h('h3', { id: 'test-verdict' }, out.matched ? 'The rule matched' : 'The rule did not match'),
    rule.failed ? h('p', null, 'First failing condition: ', h('code', null, rule.failed.path || ''),
      rule.failed.op === 'any' ? ' (none of the “any” group held)' : ` — saw ${showJson(rule.failed.seen)}`) : null,
    conds.length ? h('table', { class: 'conds', id: 'test-conditions' },
      h('caption', null, 'Each condition'),
      h('thead', null, h('tr', null, ['Path', 'Field', 'Comparison', 'Value', 'Held', 'Value seen'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, rows)) : h('p', null, 'The rule has no conditions: it always matches.'),
    h('h4', null, 'Changes it would make'), renderChanges(out.changes),
    h('h4', null, 'Effects'), renderEffects(out.effects));
}

