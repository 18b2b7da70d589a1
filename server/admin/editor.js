// The rule editor's shell: the form (name, triggers, stop), the JSON view, save / draft / publish /
// discard / duplicate, 422 errors placed next to the control their path names, and the panels
// around it. The conditions (conditions.js), the actions (actions.js), the test panel
// (testpanel.js) and the pure tree helpers (ruletree.js) are modules of their own.
import { api, enc } from './api.js';
import { h, clear, $, field, announce, showErrors, clearErrors } from './dom.js';
import { TRIGGER_LABELS } from './vocab.js';
import { EDITABLE_KEYS, toDraft, orderedTriggers, payloadOf, keepStoredShapes, body } from './rulebody.js';
import { drawTestPanel } from './testpanel.js';
import { historyPanel } from './history.js';
import { backtestPanel } from './backtest.js';
import { conditionsFieldset } from './conditions.js';
import { actionsFieldset } from './actions.js';
import { emptyNames, loadNames } from './pickers.js';
import { namesUsed } from './ruletree.js';

export function openEditor(view, app, rule, opts = {}) {
  const canEdit = app.can('manager');
  const ed = {
    draft: toDraft(rule),
    stored: rule && rule.id ? rule : null,  // the rule as the service has it (keepStoredShapes)
    names: emptyNames(),  // the groups, SLA policies, calendars and scripts that exist (pickers.js)
    saved: JSON.stringify(body(toDraft(rule))),  // an untouched new rule is not "unsaved work"
    jsonBad: new Set(),
    draftOf: null,   // the rule's stored draft (GET /v1/rules/{id}/draft), when it has one
  };
  const dirty = () => canEdit && JSON.stringify(body(ed.draft)) !== ed.saved;
  app.editorDirty = dirty;

  // A list that arrives redraws the form only when one of its pickers is on it (the datalists of
  // typed names are refreshed in place).
  loadNames(ed.names, (list) => {
    if (!form.isConnected) return;
    if (namesUsed(ed.draft).has(list)) { redraw(); return; }
    for (const [id, names] of [['group-names', ed.names.groups], ['calendar-names', ed.names.calendars]]) {
      const dl = $(`#${id}`, view);
      if (dl) { clear(dl); for (const n of names) dl.append(h('option', { value: n })); }
    }
  });

  clear(view);
  const heading = h('h1', { id: 'editor-h', tabindex: '-1' });
  const stateLine = h('p', { class: 'lead', id: 'editor-state' });
  const summary = h('div', { class: 'error-summary', id: 'editor-errors', tabindex: '-1', hidden: true });
  const form = h('form', { id: 'rule-form', novalidate: true });
  const jsonArea = h('textarea', { id: 'rule-json', rows: '16', spellcheck: 'false', class: 'code', readonly: !canEdit });
  const jsonMsg = h('p', { class: 'hint', id: 'rule-json-msg', 'aria-live': 'polite' });
  const jsonView = h('details', { class: 'json-view', id: 'json-view' },
    h('summary', null, 'JSON view (for power users)'),
    field('The rule as JSON', jsonArea, canEdit ? 'Edit and press “Apply JSON” to load it into the form above.' : null),
    canEdit ? h('button', { type: 'button', id: 'apply-json', onclick: applyJson }, 'Apply JSON') : null,
    jsonMsg);
  // Keep the JSON view in step with the form at all times (inputs change the draft without a
  // redraw). Not on the details' toggle event: it fires late and would overwrite a fast paste.
  form.addEventListener('input', syncJson);
  form.addEventListener('change', syncJson);
  const testPanel = canEdit ? h('section', { class: 'card test-panel', id: 'test-panel', 'aria-labelledby': 'test-h' }) : null;
  const btPanel = canEdit ? backtestPanel(() => payloadOf(ed.draft), ed.stored?.id, Object.fromEntries(app.rules.map((r) => [r.id, r]))) : null;
  const history = ed.stored ? historyPanel(app, ed.stored.id, (restored) => {
    replaceStored(restored);
    if (!ed.draftOf) { ed.draft = toDraft(restored); ed.draft.revision = restored.revision; ed.saved = JSON.stringify(body(toDraft(restored))); redraw(); }
    else drawHead();
  }) : null;

  view.append(
    h('div', { class: 'view-head' }, heading,
      ed.stored && opts.showRuns ? h('button', { type: 'button', class: 'quiet', id: 'where-fired', onclick: () => { if (!dirty() || confirmLeave()) opts.showRuns(ed.stored.id); } }, 'Where it fired') : null,
      h('button', { type: 'button', class: 'quiet', id: 'back-to-rules', onclick: () => close() }, '← Back to rules')),
    stateLine, summary, form, jsonView, testPanel, btPanel, history);

  function replaceStored(rule) {
    ed.stored = rule;
    const i = app.rules.findIndex((r) => r.id === rule.id);
    if (i >= 0) app.rules[i] = rule; else app.rules.push(rule);
  }

  /** Load the rule's draft, if it has one, into the form: editing a live rule works on it. */
  function loadDraft(d) {
    ed.draftOf = d;
    ed.draft = toDraft({ ...d.rule, id: ed.stored.id });
    ed.draft.revision = ed.stored.revision;
    ed.saved = JSON.stringify(body(toDraft({ ...d.rule, id: ed.stored.id })));
  }
  if (ed.stored) {
    api('GET', `/v1/rules/${enc(ed.stored.id)}/draft`).then((d) => {
      if (!view.isConnected || dirty()) return;
      loadDraft(d);
      redraw();
      drawTest();
    }).catch(() => {});
  }

  function close() {
    if (dirty() && !confirmLeave()) return;
    opts.onClose?.(ed.draft.id);
  }
  let leaveArmed = false;
  function confirmLeave() {
    if (leaveArmed) return true;
    leaveArmed = true;
    announce('There are unsaved changes. Press “Back to rules” again to leave without saving.', 'error');
    setTimeout(() => { leaveArmed = false; }, 6000);
    return false;
  }

  function drawHead() {
    const name = ed.draft.name || 'untitled';
    heading.textContent = !ed.draft.id ? 'New rule' : canEdit ? `Edit “${name}”` : `View “${name}”`;
    const live = ed.stored;
    stateLine.textContent = !ed.draft.id ? 'Not saved yet. Save it as a disabled draft, or save and enable it.'
      : ed.draftOf ? `Editing a draft of revision ${ed.draftOf.base_revision} · the live rule (${live?.enabled ? 'enabled' : 'disabled'}, revision ${live?.revision}) runs unchanged until you publish${ed.draftOf.base_revision !== live?.revision ? ' · the live rule changed after this draft was taken' : ''} · id ${ed.draft.id}`
        : `${live?.enabled ? 'Enabled' : 'Disabled'} · id ${ed.draft.id}${live?.revision ? ` · revision ${live.revision}` : ''}${canEdit ? ' · “Save draft” keeps your changes apart from the live rule' : ''}`;
    stateLine.dataset.draft = ed.draftOf ? 'yes' : 'no';
  }

  // ---------------------------------------------------------------- the form

  const ctx = { ed, redraw: (focusPath) => redraw(focusPath) };

  function redraw(focusPath) {
    const active = document.activeElement;
    const keep = focusPath || (active && form.contains(active) ? active.dataset.path || active.id : null);
    clear(form);
    const fs = h('fieldset', { class: 'plain', disabled: !canEdit });
    fs.append(
      field('Name', h('input', { type: 'text', id: 'rule-name', value: ed.draft.name, dataset: { path: 'name' }, required: true,
        oninput: (e) => { ed.draft.name = e.target.value; } })),
      field('Description (optional)', h('textarea', { id: 'rule-description', rows: '2', value: ed.draft.description || '', dataset: { path: 'description' },
        oninput: (e) => { ed.draft.description = e.target.value; } })),
      triggersFieldset(),
      conditionsFieldset(ctx),
      actionsFieldset(ctx),
      h('div', { class: 'field check' },
        h('input', { type: 'checkbox', id: 'rule-stop', checked: !!ed.draft.stop, dataset: { path: 'stop' },
          onchange: (e) => { ed.draft.stop = e.target.checked; } }),
        h('label', { for: 'rule-stop' }, 'Stop here: later rules do not run for the event once this rule fires')));
    form.append(fs);
    if (canEdit && !ed.draft.id) {
      form.append(h('div', { class: 'buttons' },
        h('button', { type: 'button', id: 'save-draft', onclick: () => save(false) }, 'Save as disabled draft'),
        h('button', { type: 'button', id: 'save-enable', class: 'primary', onclick: () => save(true) }, 'Save and enable')));
    } else if (canEdit) {
      form.append(h('div', { class: 'buttons' },
        h('button', { type: 'button', id: 'save-real-draft', onclick: () => saveDraft() }, 'Save draft'),
        ed.draftOf ? h('button', { type: 'button', id: 'publish-draft', class: 'primary', onclick: () => publish() }, 'Publish draft') : null,
        ed.draftOf ? h('button', { type: 'button', id: 'discard-draft', class: 'quiet danger', onclick: (e) => discard(e.target) }, 'Discard draft') : null,
        ed.draftOf ? null : h('button', { type: 'button', id: 'save-enable', class: 'primary', onclick: () => save(true) }, 'Save and enable'),
        h('button', { type: 'button', id: 'duplicate-rule', class: 'quiet', onclick: () => duplicate() }, 'Duplicate')));
    }
    drawHead();
    syncJson();
    if (keep) {
      const el = form.querySelector(`[data-path="${CSS.escape(keep)}"]`) || document.getElementById(keep);
      el?.focus();
    }
  }

  function triggersFieldset() {
    const fs = h('fieldset', { class: 'triggers errors-here', dataset: { path: 'triggers' }, tabindex: '-1' },
      h('legend', null, 'Triggers — which events this rule listens to'));
    const box = h('div', { class: 'checks' });
    for (const t of orderedTriggers()) {
      const id = `trig-${t.replace('.', '-')}`;
      box.append(h('span', { class: 'check' },
        h('input', { type: 'checkbox', id, value: t, checked: ed.draft.triggers.includes(t),
          onchange: (e) => {
            const set = new Set(ed.draft.triggers);
            if (e.target.checked) set.add(t); else set.delete(t);
            ed.draft.triggers = orderedTriggers().filter((x) => set.has(x));
          } }),
        h('label', { for: id }, TRIGGER_LABELS[t] || t, ' ', h('code', null, t))));
    }
    fs.append(box);
    return fs;
  }

  // ---------------------------------------------------------------- JSON view

  function syncJson() {
    const shown = payloadOf(ed.draft);
    if (ed.draft.id) shown.id = ed.draft.id;
    jsonArea.value = JSON.stringify(shown, null, 2);
    jsonArea.removeAttribute('aria-invalid');
  }

  function applyJson() {
    let parsed;
    try {
      parsed = JSON.parse(jsonArea.value);
    } catch (err) {
      jsonArea.setAttribute('aria-invalid', 'true');
      jsonMsg.textContent = `Not valid JSON: ${err.message}`;
      jsonArea.focus();
      return;
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
      jsonMsg.textContent = 'The rule must be a JSON object.';
      return;
    }
    const id = ed.draft.id;
    ed.draft = toDraft({ ...parsed, id });
    for (const k of Object.keys(parsed)) {
      if (!EDITABLE_KEYS.includes(k) && k !== 'id') ed.draft[k] = parsed[k];
    }
    jsonMsg.textContent = 'Loaded into the form. Save to keep it.';
    redraw();
    jsonArea.focus();
  }

  // ---------------------------------------------------------------- save

  async function save(enabled) {
    if (ed.jsonBad.size) {
      showErrors(view, [...ed.jsonBad].map((p) => ({ path: p, reason: 'is not valid JSON' })), summary);
      summary.focus();
      return;
    }
    clearErrors(view);
    summary.hidden = true;
    const payload = keepStoredShapes(payloadOf(ed.draft, enabled), ed.stored);
    const buttons = form.querySelectorAll('.buttons button');
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const saved = ed.draft.id
        ? await api('PUT', `/v1/rules/${enc(ed.draft.id)}`, payload)
        : await api('POST', '/v1/rules', payload);
      if (!ed.stored) opts.onSaved?.(saved.id);
      ed.stored = saved;
      ed.draft = toDraft(saved);
      ed.draft.revision = saved.revision;
      ed.saved = JSON.stringify(body(toDraft(saved)));
      const i = app.rules.findIndex((r) => r.id === saved.id);
      if (i >= 0) app.rules[i] = saved; else app.rules.push(saved);
      redraw();
      drawTest();
      announce(`Saved “${saved.name}” ${saved.enabled ? 'and enabled' : 'as a disabled draft'}.`);
    } catch (err) {
      if (err.status === 422) {
        const placed = showErrors(view, err.details, summary);
        const n = summary.querySelectorAll('li').length;
        announce(`Not saved: ${n} problem${n === 1 ? '' : 's'}, each shown next to its field.`, 'error');
        (placed[0]?.target || summary).focus();
      } else {
        showErrors(view, [{ path: '', reason: err.message }], summary);
        announce(`Not saved: ${err.message}`, 'error');
      }
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  // ---------------------------------------------------------------- drafts

  function saveFailed(err, what) {
    if (err.status === 422 && err.details) {
      const placed = showErrors(view, err.details, summary);
      const n = summary.querySelectorAll('li').length;
      announce(`${what}: ${n} problem${n === 1 ? '' : 's'}, each shown next to its field.`, 'error');
      (placed[0]?.target || summary).focus();
    } else {
      showErrors(view, [{ path: '', reason: err.message }], summary);
      announce(`${what}: ${err.message}`, 'error');
    }
  }

  function checkJson() {
    if (!ed.jsonBad.size) return true;
    showErrors(view, [...ed.jsonBad].map((p) => ({ path: p, reason: 'is not valid JSON' })), summary);
    summary.focus();
    return false;
  }

  /** PUT the form as the rule's draft; the live rule is not touched. */
  async function saveDraft(quiet = false) {
    if (!checkJson()) return false;
    clearErrors(view);
    summary.hidden = true;
    const payload = keepStoredShapes(payloadOf(ed.draft), ed.stored);
    try {
      const d = await api('PUT', `/v1/rules/${enc(ed.draft.id)}/draft`, payload);
      loadDraft(d);
      redraw();
      drawTest();
      if (!quiet) announce(`Saved the draft of “${ed.stored.name}”; the live rule is unchanged.`);
      return true;
    } catch (err) {
      saveFailed(err, 'Draft not saved');
      return false;
    }
  }

  async function publish() {
    if (dirty() && !(await saveDraft(true))) return;
    try {
      const rule = await api('POST', `/v1/rules/${enc(ed.draft.id)}/draft/publish`,
        { revision: ed.stored.revision });
      replaceStored(rule);
      ed.draftOf = null;
      ed.draft = toDraft(rule);
      ed.draft.revision = rule.revision;
      ed.saved = JSON.stringify(body(toDraft(rule)));
      redraw();
      drawTest();
      history?.reload();
      announce(`Published: “${rule.name}” is now at revision ${rule.revision}.`);
    } catch (err) {
      saveFailed(err, 'Not published');
    }
  }

  async function discard(btn) {
    if (btn.dataset.armed !== '1') {
      btn.dataset.armed = '1';
      btn.textContent = 'Confirm discard';
      announce('Press again to throw the draft away (the live rule stays as it is).');
      setTimeout(() => { if (btn.isConnected) { btn.dataset.armed = ''; btn.textContent = 'Discard draft'; } }, 6000);
      return;
    }
    try {
      await api('DELETE', `/v1/rules/${enc(ed.draft.id)}/draft`);
      ed.draftOf = null;
      ed.draft = toDraft(ed.stored);
      ed.draft.revision = ed.stored.revision;
      ed.saved = JSON.stringify(body(toDraft(ed.stored)));
      redraw();
      drawTest();
      announce('Discarded the draft; the form shows the live rule again.');
    } catch (err) {
      saveFailed(err, 'Not discarded');
    }
  }

  async function duplicate() {
    try {
      const copy = await api('POST', `/v1/rules/${enc(ed.stored.id)}/duplicate`);
      app.rules.push(copy);
      announce(`Duplicated as “${copy.name}” (disabled), last in the order.`);
      opts.onClose?.(copy.id);
    } catch (err) {
      saveFailed(err, 'Not duplicated');
    }
  }

  // ---------------------------------------------------------------- test panel

  const drawTest = testPanel ? () => drawTestPanel(testPanel, ed, dirty) : () => {};

  redraw();
  drawTest();
  if (opts.focusTest && testPanel) {
    testPanel.scrollIntoView();
    $('#test-event', testPanel)?.focus();
  } else {
    heading.focus();
  }
}
