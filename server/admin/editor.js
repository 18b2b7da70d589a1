// The rule editor: triggers, a nested all/any condition builder whose pickers only offer valid
// field/op/value combinations, the actions list, save as draft or enabled, 422 errors placed next
// to the control their path names, a JSON view, and the dry-run test panel.
import { api, listAll, enc } from './api.js';
import { h, clear, $, field, uid, announce, showErrors, clearErrors } from './dom.js';
import {
  vocab, fieldInfo, opsFor, valueKind, caseMatters, defaultValue, fits, parseScalar, showScalar,
  splitList, takesCalendar, OP_LABELS, TRIGGER_LABELS, ACTION_LABELS,
} from './vocab.js';
import { EDITABLE_KEYS, toDraft, orderedTriggers, payloadOf, keepStoredShapes, body } from './rulebody.js';
import { drawTestPanel } from './testpanel.js';
import { historyPanel } from './history.js';
import { backtestPanel } from './backtest.js';

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

export function openEditor(view, app, rule, opts = {}) {
  const canEdit = app.can('manager');
  const ed = {
    draft: toDraft(rule),
    stored: rule && rule.id ? rule : null,  // the rule as the service has it (keepStoredShapes)
    calendars: [],
    saved: JSON.stringify(body(toDraft(rule))),  // an untouched new rule is not "unsaved work"
    groups: [],
    jsonBad: new Set(),
    draftOf: null,   // the rule's stored draft (GET /v1/rules/{id}/draft), when it has one
  };
  const dirty = () => canEdit && JSON.stringify(body(ed.draft)) !== ed.saved;
  app.editorDirty = dirty;

  listAll('/v1/groups').then((gs) => {
    ed.groups = gs.map((g) => g.name);
    const dl = $('#group-names', view);
    if (dl) { clear(dl); for (const g of ed.groups) dl.append(h('option', { value: g })); }
  }).catch(() => {});
  listAll('/v1/sla-policies').then((ps) => {
    ed.calendars = ps.filter((p) => p.business_hours).map((p) => p.name);
    const dl = $('#calendar-names', view);
    if (dl) { clear(dl); for (const c of ed.calendars) dl.append(h('option', { value: c })); }
  }).catch(() => {});

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
      conditionsFieldset(),
      actionsFieldset(),
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

  // ---------------------------------------------------------------- conditions

  function conditionsFieldset() {
    const fs = h('fieldset', { class: 'conditions errors-here', dataset: { path: 'conditions' }, tabindex: '-1' },
      h('legend', null, 'Conditions'),
      h('p', { class: 'hint' }, 'Empty means the rule fires on every event of its triggers. Pick a field first: only the comparisons that field supports are offered.'));
    fs.append(groupNode(ed.draft.conditions, 'conditions', null, 0),
      h('datalist', { id: 'calendar-names' }, ed.calendars.map((c) => h('option', { value: c }))));
    return fs;
  }

  function groupNode(node, path, parent, depth) {
    const mode = Array.isArray(node.any) ? 'any' : 'all';
    const kids = node[mode];
    const el = h('div', { class: `group depth-${depth % 3}`, role: 'group', 'aria-label': depth ? `Condition group ${path}` : 'Conditions',
      dataset: depth ? { path } : null, tabindex: depth ? '-1' : null });
    const modeSel = h('select', { id: uid('mode'), dataset: { path: `${path}.${mode}` },
      onchange: (e) => {
        const next = e.target.value;
        const items = node[mode];
        delete node[mode];
        node[next] = items;
        redraw(`${path}.${next}`);
      } },
    h('option', { value: 'all', selected: mode === 'all' }, 'all of these hold (and)'),
    h('option', { value: 'any', selected: mode === 'any' }, 'any of these holds (or)'));
    el.append(h('div', { class: 'group-head' },
      h('label', { for: modeSel.id }, depth ? 'Group: match when' : 'Match when'), modeSel,
      parent ? h('button', { type: 'button', class: 'quiet danger', 'aria-label': `Remove group ${path}`,
        onclick: () => { parent.list.splice(parent.index, 1); redraw(parent.path); } }, 'Remove group') : null));
    const ol = h('ol', { class: 'children' });
    kids.forEach((kid, i) => {
      const kidPath = `${path}.${mode}[${i}]`;
      const ctx = { list: kids, index: i, path: `${path}.${mode}` };
      const isGroup = kid && typeof kid === 'object' && (Array.isArray(kid.all) || Array.isArray(kid.any));
      ol.append(h('li', null, isGroup ? groupNode(kid, kidPath, ctx, depth + 1) : leafNode(kid, kidPath, ctx)));
    });
    if (!kids.length) ol.append(h('li', { class: 'hint empty' }, mode === 'all' ? 'No conditions: always holds.' : 'Empty “any” never holds: add a condition.'));
    el.append(ol, h('div', { class: 'group-add' },
      h('button', { type: 'button', class: 'quiet', 'aria-label': `Add condition to ${depth ? `group ${path}` : 'conditions'}`,
        onclick: () => { kids.push({ field: 'subject', op: 'contains', value: '' }); redraw(`${path}.${mode}[${kids.length - 1}].field`); } }, '+ Condition'),
      h('button', { type: 'button', class: 'quiet', 'aria-label': `Add group to ${depth ? `group ${path}` : 'conditions'}`,
        onclick: () => { kids.push({ any: [{ field: 'subject', op: 'contains', value: '' }] }); redraw(`${path}.${mode}[${kids.length - 1}].any`); } }, '+ Group (any/all)')));
    return el;
  }

  function fieldSelect(leaf, path) {
    const info = fieldInfo(leaf.field);
    const sel = h('select', { dataset: { path: `${path}.field` }, 'aria-label': `Field of condition ${path}` });
    const groups = { Ticket: [], Contact: [], Message: [], Event: [] };
    for (const f of vocab().fields) {
      const g = f.name.startsWith('contact.') ? 'Contact' : f.name.startsWith('message.') ? 'Message'
        : f.name.startsWith('event.') ? 'Event' : 'Ticket';
      groups[g].push(f.name);
    }
    for (const [label, names] of Object.entries(groups)) {
      sel.append(h('optgroup', { label }, names.map((n) => h('option', { value: n, selected: leaf.field === n }, n))));
    }
    sel.append(h('optgroup', { label: 'Custom (type known at run time)' },
      vocab().prefixed.map((p) => h('option', { value: p.prefix, selected: !!info?.prefix && info.prefix === p.prefix }, `${p.prefix}<key>`))));
    if (!info && leaf.field) sel.prepend(h('option', { value: leaf.field, selected: true }, `${leaf.field} (unknown)`));
    sel.addEventListener('change', () => {
      const v = sel.value;
      const fam = vocab().prefixed.find((p) => p.prefix === v);
      if (fam) {
        const old = fieldInfo(leaf.field);
        const key = old?.prefix ? leaf.field.slice(old.prefix.length) : '';
        leaf.field = fam.prefix + key;
      } else {
        leaf.field = v;
      }
      fixLeaf(leaf);
      redraw(fam ? `${path}.field.key` : `${path}.field`);
    });
    return sel;
  }

  function fixLeaf(leaf) {
    const ops = opsFor(leaf.field);
    if (ops.length && !ops.includes(leaf.op)) leaf.op = ops.includes('is') ? 'is' : ops[0];
    const kind = valueKind(leaf.op, leaf.field);
    const values = fieldInfo(leaf.field)?.values || [];
    if (kind === 'none') delete leaf.value;
    else if (kind === 'choice') { if (!values.includes(leaf.value)) leaf.value = values[0]; }
    else if (!fits(leaf.value, kind)) leaf.value = defaultValue(kind);
    if (!caseMatters(leaf.op, leaf.field)) delete leaf.case_sensitive;
    if (!takesCalendar(leaf.op)) delete leaf.calendar;
    else if (!('calendar' in leaf)) leaf.calendar = '';
  }

  function leafNode(leaf, path, parent) {
    const info = fieldInfo(leaf.field);
    const el = h('div', { class: 'leaf', dataset: { path }, tabindex: '-1', role: 'group', 'aria-label': `Condition ${path}` });
    const controls = [h('div', { class: 'field' }, fieldSelect(leaf, path))];
    if (info?.prefix) {
      controls.push(h('div', { class: 'field' }, h('input', {
        type: 'text', class: 'key', value: leaf.field.slice(info.prefix.length), placeholder: 'key',
        'aria-label': `Key of ${info.prefix} field in condition ${path}`, dataset: { path: `${path}.field.key` },
        oninput: (e) => { leaf.field = info.prefix + e.target.value; },
      })));
    }
    const ops = opsFor(leaf.field);
    const opSel = h('select', { dataset: { path: `${path}.op` }, 'aria-label': `Comparison of condition ${path}`,
      onchange: (e) => { leaf.op = e.target.value; fixLeaf(leaf); redraw(`${path}.op`); } },
    ops.map((op) => h('option', { value: op, selected: leaf.op === op }, OP_LABELS[op] || op)));
    if (!ops.includes(leaf.op)) opSel.prepend(h('option', { value: leaf.op ?? '', selected: true }, `${leaf.op} (not valid here)`));
    controls.push(h('div', { class: 'field' }, opSel));
    const kind = valueKind(leaf.op, leaf.field);
    if (kind !== 'none') controls.push(h('div', { class: 'field value' }, valueInput(leaf, path, kind, info)));
    if (takesCalendar(leaf.op)) controls.push(h('div', { class: 'field value' }, calendarInput(leaf, path)));
    if (caseMatters(leaf.op, leaf.field)) {
      const id = uid('cs');
      controls.push(h('span', { class: 'check small' },
        h('input', { type: 'checkbox', id, checked: !!leaf.case_sensitive, dataset: { path: `${path}.case_sensitive` },
          onchange: (e) => { if (e.target.checked) leaf.case_sensitive = true; else delete leaf.case_sensitive; } }),
        h('label', { for: id }, 'match case')));
    }
    controls.push(h('button', { type: 'button', class: 'icon quiet danger', 'aria-label': `Remove condition ${path}`, title: 'Remove condition',
      onclick: () => { parent.list.splice(parent.index, 1); redraw(parent.path); } }, '✕'));
    el.append(...controls);
    return el;
  }

  /** A business-time condition's calendar: an SLA policy's name, or an inline business_hours
   *  object typed as JSON ({"timezone": ..., "week": ...}). */
  function calendarInput(leaf, path) {
    const dp = `${path}.calendar`;
    const isObject = leaf.calendar && typeof leaf.calendar === 'object';
    return h('input', { type: 'text', list: 'calendar-names', dataset: { path: dp },
      value: isObject ? JSON.stringify(leaf.calendar) : (leaf.calendar ?? ''),
      placeholder: 'SLA policy name, or {"timezone": …, "week": …}',
      'aria-label': `Calendar of condition ${path} (an SLA policy's business hours, or a business_hours object as JSON)`,
      oninput: (e) => {
        const v = e.target.value.trim();
        ed.jsonBad.delete(dp); e.target.removeAttribute('aria-invalid');
        if (!v.startsWith('{')) { leaf.calendar = e.target.value; return; }
        try { leaf.calendar = JSON.parse(v); } catch { ed.jsonBad.add(dp); e.target.setAttribute('aria-invalid', 'true'); }
      } });
  }

  function valueInput(leaf, path, kind, info) {
    const label = `Value of condition ${path}`;
    const dp = { path: `${path}.value` };
    const enumValues = info?.values;
    if (kind === 'choice') {
      const choices = enumValues || [];
      const sel = h('select', { dataset: dp, 'aria-label': `${label} (in the order ${choices.join(' < ')})`,
        onchange: (e) => { leaf.value = e.target.value; } },
      choices.map((v) => h('option', { value: v, selected: leaf.value === v }, v)));
      if (!choices.includes(leaf.value)) sel.prepend(h('option', { value: String(leaf.value ?? ''), selected: true }, `${leaf.value ?? ''} (not valid here)`));
      return sel;
    }
    if (kind === 'string' && enumValues && ['is', 'is_not', 'changed_from', 'changed_to'].includes(leaf.op)) {
      return h('select', { dataset: dp, 'aria-label': label, onchange: (e) => { leaf.value = e.target.value; } },
        h('option', { value: '', selected: !leaf.value }, 'choose…'),
        enumValues.map((v) => h('option', { value: v, selected: leaf.value === v }, v)));
    }
    if (kind === 'number') {
      return h('input', { type: 'number', step: 'any', value: String(leaf.value ?? 0), dataset: dp, 'aria-label': label,
        oninput: (e) => { leaf.value = e.target.value === '' ? null : Number(e.target.value); } });
    }
    if (kind === 'strings' || kind === 'scalars') {
      const hint = enumValues ? `comma-separated: ${enumValues.join(', ')}` : 'comma-separated';
      return h('input', { type: 'text', value: (leaf.value || []).map(kind === 'scalars' ? showScalar : String).join(', '), dataset: dp,
        'aria-label': `${label} (${hint})`, placeholder: hint,
        oninput: (e) => { const parts = splitList(e.target.value); leaf.value = kind === 'scalars' ? parts.map(parseScalar) : parts; } });
    }
    if (kind === 'scalar') {
      return h('input', { type: 'text', value: showScalar(leaf.value), dataset: dp, 'aria-label': `${label} (numbers and true/false are read as such; quote to compare text)`,
        placeholder: 'text, number or true/false', oninput: (e) => { leaf.value = parseScalar(e.target.value); } });
    }
    const attrs = { type: 'text', value: leaf.value ?? '', dataset: dp, 'aria-label': label,
      oninput: (e) => { leaf.value = e.target.value; } };
    if (kind === 'duration') { attrs.placeholder = 'e.g. 90s, 5m, 1h30m, 2d'; attrs['aria-label'] = `${label} (a duration like 1h30m)`; }
    if (leaf.op === 'matches') attrs.placeholder = 'regular expression';
    if (info?.name === 'contact.groups') attrs.list = 'group-names';
    return h('input', attrs);
  }

  // ---------------------------------------------------------------- actions

  function actionsFieldset() {
    const fs = h('fieldset', { class: 'actions errors-here', dataset: { path: 'actions' }, tabindex: '-1' },
      h('legend', null, 'Actions — applied in this order when the rule fires'));
    const ol = h('ol', { class: 'action-list' });
    ed.draft.actions.forEach((a, i) => ol.append(actionRow(a, i)));
    if (!ed.draft.actions.length) ol.append(h('li', { class: 'hint empty' }, 'No actions yet: a rule needs at least one.'));
    const addSel = h('select', { id: 'add-action-type' },
      Object.keys(vocab().actions).map((t) => h('option', { value: t }, ACTION_LABELS[t] || t)));
    fs.append(ol, h('div', { class: 'add-action' },
      h('label', { for: 'add-action-type' }, 'New action'), addSel,
      h('button', { type: 'button', id: 'add-action', onclick: () => {
        const t = addSel.value;
        ed.draft.actions.push({ type: t, ...ACTION_DEFAULTS[t]() });
        redraw(`actions[${ed.draft.actions.length - 1}].type`);
      } }, 'Add action')),
    h('datalist', { id: 'group-names' }, ed.groups.map((g) => h('option', { value: g }))));
    return fs;
  }

  function actionRow(a, i) {
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
      h('div', { class: 'action-params' }, actionParams(a, path, i)));
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

  function jsonBox(a, key, path, label, hint) {
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

  function actionParams(a, path) {
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
        Object.keys(settable).map((f) => h('option', { value: f, selected: a.field === f }, f)),
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
        return text(a, 'group', path, 'Group', { list: 'group-names' });
      case 'apply_sla':
        return text(a, 'policy', path, 'SLA policy');
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
          jsonBox(a, 'headers', path, 'Headers'), jsonBox(a, 'body', path, 'Body')];
      case 'http_request':
        return [text(a, 'url', path, 'URL', { type: 'url', placeholder: 'https://…' }), methodSelect(a, path, 'GET'),
          text(a, 'secret', path, 'Secret name (sent as a Bearer token)'),
          jsonBox(a, 'map', path, 'Map response to variables', '{"customer_type": "$.customerType"} → vars.customer_type'),
          jsonBox(a, 'headers', path, 'Headers'), jsonBox(a, 'body', path, 'Body')];
      case 'run_script':
        return [text(a, 'script', path, 'Script name'), text(a, 'version', path, 'Version', { type: 'number', number: true })];
      default:
        return h('p', { class: 'hint' }, 'Edit this action in the JSON view.');
    }
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
