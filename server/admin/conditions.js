// The editor's conditions: a nested all/any builder whose pickers only offer valid field → op →
// value combinations (from /admin/vocab.json), fields in a manager's words with the API name on
// hover, and the contact groups and calendars that exist offered as you type (a contact may carry
// a group name that is no longer a group, so a condition may name it). The tree edits themselves are
// ruletree.js's (pure); this module draws them.
import { h, uid } from './dom.js';
import {
  vocab, fieldInfo, opsFor, valueKind, caseMatters, parseScalar, showScalar, splitList, takesCalendar,
  fieldLabel, fieldGroup, opLabel,
} from './vocab.js';
import { isGroup, modeOf, setMode, newCondition, newGroup, addChild, fixLeaf, pickField } from './ruletree.js';

/** The Conditions fieldset of the draft `ctx.ed.draft`; `ctx.redraw(focusPath)` redraws the form. */
export function conditionsFieldset(ctx) {
  const fs = h('fieldset', { class: 'conditions errors-here', dataset: { path: 'conditions' }, tabindex: '-1' },
    h('legend', null, 'Conditions'),
    h('p', { class: 'hint' }, 'Empty means the rule fires on every event of its triggers. Pick a field first: only the comparisons that field supports are offered. Hover a field to see its API name.'));
  fs.append(groupNode(ctx, ctx.ed.draft.conditions, 'conditions', null, 0),
    h('datalist', { id: 'calendar-names' }, ctx.ed.names.calendars.map((c) => h('option', { value: c }))),
    h('datalist', { id: 'group-names' }, ctx.ed.names.groups.map((g) => h('option', { value: g }))));
  return fs;
}

function groupNode(ctx, node, path, parent, depth) {
  const { redraw } = ctx;
  const mode = modeOf(node);
  const kids = node[mode];
  const el = h('div', { class: `group depth-${depth % 3}`, role: 'group', 'aria-label': depth ? `Condition group ${path}` : 'Conditions',
    dataset: depth ? { path } : null, tabindex: depth ? '-1' : null });
  const modeSel = h('select', { id: uid('mode'), dataset: { path: `${path}.${mode}` },
    onchange: (e) => { setMode(node, e.target.value); redraw(`${path}.${e.target.value}`); } },
  h('option', { value: 'all', selected: mode === 'all' }, 'all of these hold (and)'),
  h('option', { value: 'any', selected: mode === 'any' }, 'any of these holds (or)'));
  el.append(h('div', { class: 'group-head' },
    h('label', { for: modeSel.id }, depth ? 'Group: match when' : 'Match when'), modeSel,
    parent ? h('button', { type: 'button', class: 'quiet danger', 'aria-label': `Remove group ${path}`,
      onclick: () => { parent.list.splice(parent.index, 1); redraw(parent.path); } }, 'Remove group') : null));
  const ol = h('ol', { class: 'children' });
  kids.forEach((kid, i) => {
    const kidPath = `${path}.${mode}[${i}]`;
    const pctx = { list: kids, index: i, path: `${path}.${mode}` };
    ol.append(h('li', null, isGroup(kid) ? groupNode(ctx, kid, kidPath, pctx, depth + 1) : leafNode(ctx, kid, kidPath, pctx)));
  });
  if (!kids.length) ol.append(h('li', { class: 'hint empty' }, mode === 'all' ? 'No conditions: always holds.' : 'Empty “any” never holds: add a condition.'));
  el.append(ol, h('div', { class: 'group-add' },
    h('button', { type: 'button', class: 'quiet', 'aria-label': `Add condition to ${depth ? `group ${path}` : 'conditions'}`,
      onclick: () => redraw(`${addChild(node, path, newCondition())}.field`) }, '+ Condition'),
    h('button', { type: 'button', class: 'quiet', 'aria-label': `Add group to ${depth ? `group ${path}` : 'conditions'}`,
      onclick: () => redraw(`${addChild(node, path, newGroup())}.any`) }, '+ Group (any/all)')));
  return el;
}

function fieldSelect(ctx, leaf, path) {
  const info = fieldInfo(leaf.field);
  const sel = h('select', { dataset: { path: `${path}.field` }, 'aria-label': `Field of condition ${path}`,
    title: typeof leaf.field === 'string' ? `API name: ${leaf.field}` : null });
  const groups = { Ticket: [], Contact: [], Company: [], Message: [], Event: [] };
  for (const f of vocab().fields) groups[fieldGroup(f.name)].push(f.name);
  for (const [label, names] of Object.entries(groups)) {
    if (!names.length) continue;
    sel.append(h('optgroup', { label }, names.map((n) => h('option', { value: n, title: n, selected: leaf.field === n }, fieldLabel(n)))));
  }
  sel.append(h('optgroup', { label: 'Custom (type known at run time)' },
    vocab().prefixed.map((p) => h('option', { value: p.prefix, title: `${p.prefix}<key>`, selected: !!info?.prefix && info.prefix === p.prefix }, p.label))));
  if (!info && leaf.field) sel.prepend(h('option', { value: leaf.field, selected: true }, `${leaf.field} (unknown)`));
  sel.addEventListener('change', () => {
    const prefixes = vocab().prefixed.map((p) => p.prefix);
    pickField(leaf, sel.value, prefixes);
    ctx.redraw(prefixes.includes(sel.value) ? `${path}.field.key` : `${path}.field`);
  });
  return sel;
}

function leafNode(ctx, leaf, path, parent) {
  const info = fieldInfo(leaf.field);
  const el = h('div', { class: 'leaf', dataset: { path }, tabindex: '-1', role: 'group', 'aria-label': `Condition ${path}` });
  const controls = [h('div', { class: 'field' }, fieldSelect(ctx, leaf, path))];
  if (info?.prefix) {
    controls.push(h('div', { class: 'field' }, h('input', {
      type: 'text', class: 'key', value: leaf.field.slice(info.prefix.length), placeholder: 'key',
      'aria-label': `Key of ${info.prefix} field in condition ${path}`, dataset: { path: `${path}.field.key` },
      oninput: (e) => { leaf.field = info.prefix + e.target.value; },
    })));
  }
  const ops = opsFor(leaf.field);
  const opSel = h('select', { dataset: { path: `${path}.op` }, 'aria-label': `Comparison of condition ${path}`,
    title: leaf.op ? `API name: ${leaf.op}` : null,
    onchange: (e) => { leaf.op = e.target.value; fixLeaf(leaf); ctx.redraw(`${path}.op`); } },
  ops.map((op) => h('option', { value: op, title: op, selected: leaf.op === op }, opLabel(op, leaf.field))));
  if (!ops.includes(leaf.op)) opSel.prepend(h('option', { value: leaf.op ?? '', selected: true }, `${leaf.op} (not valid here)`));
  controls.push(h('div', { class: 'field' }, opSel));
  const kind = valueKind(leaf.op, leaf.field);
  if (kind !== 'none') controls.push(h('div', { class: 'field value' }, valueInput(ctx, leaf, path, kind, info)));
  if (takesCalendar(leaf.op)) controls.push(h('div', { class: 'field value' }, calendarInput(ctx, leaf, path)));
  if (caseMatters(leaf.op, leaf.field)) {
    const id = uid('cs');
    controls.push(h('span', { class: 'check small' },
      h('input', { type: 'checkbox', id, checked: !!leaf.case_sensitive, dataset: { path: `${path}.case_sensitive` },
        onchange: (e) => { if (e.target.checked) leaf.case_sensitive = true; else delete leaf.case_sensitive; } }),
      h('label', { for: id }, 'match case')));
  }
  controls.push(h('button', { type: 'button', class: 'icon quiet danger', 'aria-label': `Remove condition ${path}`, title: 'Remove condition',
    onclick: () => { parent.list.splice(parent.index, 1); ctx.redraw(parent.path); } }, '✕'));
  el.append(...controls);
  return el;
}

/** A business-time condition's calendar: an SLA policy's name, or an inline business_hours
 *  object typed as JSON ({"timezone": ..., "week": ...}). */
function calendarInput(ctx, leaf, path) {
  const dp = `${path}.calendar`;
  const isObject = leaf.calendar && typeof leaf.calendar === 'object';
  return h('input', { type: 'text', list: 'calendar-names', dataset: { path: dp },
    value: isObject ? JSON.stringify(leaf.calendar) : (leaf.calendar ?? ''),
    placeholder: 'SLA policy name, or {"timezone": …, "week": …}',
    'aria-label': `Calendar of condition ${path} (an SLA policy's business hours, or a business_hours object as JSON)`,
    oninput: (e) => {
      const v = e.target.value.trim();
      ctx.ed.jsonBad.delete(dp); e.target.removeAttribute('aria-invalid');
      if (!v.startsWith('{')) { leaf.calendar = e.target.value; return; }
      try { leaf.calendar = JSON.parse(v); } catch { ctx.ed.jsonBad.add(dp); e.target.setAttribute('aria-invalid', 'true'); }
    } });
}

function valueInput(ctx, leaf, path, kind, info) {
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
    const known = enumValues || (info?.name === 'contact.groups' && ctx.ed.names.groups.length ? ctx.ed.names.groups : null);
    const hint = known ? `comma-separated: ${known.join(', ')}` : 'comma-separated';
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
