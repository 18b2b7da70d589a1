// The editor's pure helpers (no DOM, no fetch; tests/web/js/ runs them under `node --test`):
// building and walking a condition tree by the paths the service's 422s name
// (`conditions.all[1].any[0].value`), keeping a condition valid when its field or op changes, where
// a 422 detail goes on the form, and which branch of an `any` group held in a run.
import {
  fieldInfo, opsFor, valueKind, caseMatters, defaultValue, fits, takesCalendar, fieldLabel, opLabel,
} from './vocab.js';

/** Whether a node is a group ({all: [...]} or {any: [...]}) rather than a condition. */
export function isGroup(node) {
  return !!node && typeof node === 'object' && (Array.isArray(node.all) || Array.isArray(node.any));
}

/** 'all' or 'any' of a group. */
export function modeOf(node) { return Array.isArray(node.any) ? 'any' : 'all'; }

/** Switch a group between all and any, keeping its children. */
export function setMode(node, mode) {
  const from = modeOf(node);
  if (from === mode) return node;
  const kids = node[from];
  delete node[from];
  node[mode] = kids;
  return node;
}

/** A new condition: the first field in the picker with the op a new row starts on. */
export function newCondition() { return { field: 'subject', op: 'contains', value: '' }; }

/** A new nested group with one condition. */
export function newGroup() { return { any: [newCondition()] }; }

/** Append a condition (or a group) to a group; answers the path of the new child. */
export function addChild(group, groupPath, child) {
  const mode = modeOf(group);
  group[mode].push(child);
  return `${groupPath}.${mode}[${group[mode].length - 1}]`;
}

/** `conditions.all[1].any[0].value` -> ['conditions', 'all', 1, 'any', 0, 'value']. */
export function parsePath(path) {
  const out = [];
  for (const m of String(path).matchAll(/([^.[\]]+)|\[(\d+)\]/g)) out.push(m[2] !== undefined ? Number(m[2]) : m[1]);
  return out;
}

/** The path one step up: `a.b[2]` -> `a.b`, `a.b` -> `a`, `a` -> ''. */
export function parentPath(path) {
  const m = String(path).match(/^(.*?)(\.[^.[\]]+|\[\d+\])$/);
  return m ? m[1] : '';
}

/** The node at `path` under `root` (a rule, or anything), or undefined. */
export function nodeAt(root, path) {
  let cur = root;
  for (const step of parsePath(path)) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = cur[step];
  }
  return cur;
}

/** After a change of field or op: the op becomes one the field takes, the value one the op takes
 *  (kept when it still fits), and case_sensitive / calendar go where they mean nothing. */
export function fixLeaf(leaf) {
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
  return leaf;
}

/** A field picked in the picker: a prefixed family (`custom.`) keeps the key typed so far. */
export function pickField(leaf, picked, prefixes) {
  if (prefixes.includes(picked)) {
    const old = fieldInfo(leaf.field);
    const key = old?.prefix ? leaf.field.slice(old.prefix.length) : '';
    leaf.field = picked + key;
  } else {
    leaf.field = picked;
  }
  return fixLeaf(leaf);
}

const PICKED_BY_ACTION = { add_to_group: 'groups', remove_from_group: 'groups', apply_sla: 'policies', run_script: 'scripts' };

/** Which name lists ('groups', 'policies', 'scripts') the draft's actions pick from: the editor
 *  redraws for a list that arrives late only when one of its pickers is on the form (conditions
 *  offer names in a datalist, refreshed in place). */
export function namesUsed(draft) {
  const used = new Set();
  for (const a of draft.actions || []) if (a && PICKED_BY_ACTION[a.type]) used.add(PICKED_BY_ACTION[a.type]);
  return used;
}

// ------------------------------------------------------------------ 422 details on the form

/** The details of a 422 without repeats (the service and the engine may name one problem twice). */
export function uniqueDetails(details) {
  const seen = new Set();
  return (Array.isArray(details) ? details : []).filter((d) => {
    const k = `${d.path}\u0000${d.reason || d.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** Where each detail goes: `at` is the nearest path, the detail's own or an ancestor's, for which
 *  `has(path)` says the form has a control; details with none are `leftovers` (the summary). */
export function placeDetails(details, has) {
  const placed = [];
  const leftovers = [];
  for (const d of uniqueDetails(details)) {
    const path = typeof d.path === 'string' ? d.path : '';
    const reason = d.reason || d.message || 'is not valid';
    let at = null;
    for (let p = path; ; p = parentPath(p)) {
      if (has(p)) { at = p; break; }
      if (!p) break;
    }
    if (at === null) leftovers.push({ path, reason }); else placed.push({ path, reason, at });
  }
  return { placed, leftovers };
}

// ------------------------------------------------------------------ a run's any_held

/** One line for a condition or group, in a manager's words ("Priority is above normal"). */
export function describeNode(node) {
  if (isGroup(node)) {
    const mode = modeOf(node);
    const parts = node[mode].map((k) => (isGroup(k) ? `(${describeNode(k)})` : describeNode(k)));
    return parts.length ? parts.join(mode === 'all' ? ' and ' : ' or ') : (mode === 'all' ? 'always' : 'never');
  }
  if (!node || typeof node !== 'object') return '?';
  const value = 'value' in node ? ` ${Array.isArray(node.value) ? node.value.join(', ') : String(node.value)}` : '';
  return `${fieldLabel(node.field)} ${opLabel(node.op, node.field)}${value}`;
}

/** A run record's `any_held` ({group path: branch path}) as rows to show: the group and the branch
 *  that held, each with its words when the rule's conditions are at hand (`rule` may be null: a
 *  deleted rule shows the paths alone). Sorted by group path, as written. */
export function anyHeldRows(anyHeld, rule) {
  if (!anyHeld || typeof anyHeld !== 'object') return [];
  return Object.keys(anyHeld).sort().map((group) => {
    const branch = anyHeld[group];
    const g = rule ? nodeAt(rule, group) : undefined;
    const b = rule ? nodeAt(rule, branch) : undefined;
    const index = parsePath(branch).at(-1);
    return {
      group, branch,
      ordinal: typeof index === 'number' ? index + 1 : null,
      of: isGroup(g) ? g[modeOf(g)].length : null,
      text: b === undefined ? null : describeNode(b),
    };
  });
}
