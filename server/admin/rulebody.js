// What the editor sends and keeps: a stored rule in the editor's shape, the payload of a save,
// and the sample event of the test panel. Pure (no DOM, no fetch): tests/web/test_admin_manage.py
// calls them in the page.
import { vocab, TRIGGER_LABELS } from './vocab.js';

export const EDITABLE_KEYS = ['name', 'description', 'enabled', 'triggers', 'conditions', 'actions', 'stop'];


/** A copy of a stored rule in the editor's shape: conditions always a group at the root. */
export function toDraft(rule) {
  const d = {};
  for (const k of EDITABLE_KEYS) if (rule && k in rule) d[k] = structuredClone(rule[k]);
  if (rule && rule.id) d.id = rule.id;
  d.name = d.name || '';
  d.triggers = Array.isArray(d.triggers) ? d.triggers : ['ticket.created'];
  d.actions = Array.isArray(d.actions) ? d.actions : [];
  d.stop = !!d.stop;
  d.enabled = !!d.enabled;
  const c = d.conditions;
  if (!c || typeof c !== 'object' || Object.keys(c).length === 0) d.conditions = { all: [] };
  else if (!Array.isArray(c.all) && !Array.isArray(c.any)) d.conditions = { all: [c] };
  return d;
}

export function orderedTriggers() {
  const known = Object.keys(TRIGGER_LABELS).filter((t) => vocab().triggers.includes(t));
  return [...known, ...vocab().triggers.filter((t) => !known.includes(t))];
}

/** What is sent: the editable keys, plus any other key a power user typed in the JSON view (the
 *  service then names it in a 422 instead of the page dropping it silently). */
export function payloadOf(draft, enabled) {
  const out = body(draft, enabled);
  for (const k of Object.keys(draft)) {
    if (!EDITABLE_KEYS.includes(k) && !['id', 'revision', 'position', 'created_at', 'updated_at'].includes(k)) out[k] = draft[k];
  }
  return out;
}

/** Keys the editor did not change go out exactly as stored: toDraft's own normalizations
 *  (`stop: null` → false, no conditions → {all: []}, a bare leaf → {all: [leaf]}) must not turn
 *  "open and save" into a new revision. */
export function keepStoredShapes(out, stored) {
  if (!stored) return out;
  const norm = body(toDraft(stored));
  for (const k of EDITABLE_KEYS) {
    if (k === 'enabled' || JSON.stringify(out[k]) !== JSON.stringify(norm[k])) continue;
    if (k in stored) out[k] = structuredClone(stored[k]); else delete out[k];
  }
  return out;
}

export function body(draft, enabled) {
  const out = {};
  for (const k of EDITABLE_KEYS) if (k in draft) out[k] = structuredClone(draft[k]);
  if (enabled !== undefined) out.enabled = enabled;
  if (!out.description) delete out.description;
  return out;
}


/** A sample event for the test panel, prefilled from the rule's conditions. */
export function sampleEvent(draft) {
  const type = draft.triggers.find((t) => !['time.reached', 'sla.warning', 'sla.breached', 'ticket.woke'].includes(t)) || 'ticket.created';
  const ticket = { id: 'T-test', subject: 'Test ticket', status: 'new', priority: 'normal', channel: 'email', tags: [],
    contact: { id: 'C-test', email: 'ann@example.com', name: 'Ann', groups: [] } };
  const message = { author: 'customer', body: 'Hello', channel: 'email' };
  const walk = (node) => {
    if (!node || typeof node !== 'object') return;
    if (Array.isArray(node.all)) { node.all.forEach(walk); return; }
    if (Array.isArray(node.any)) { walk(node.any[0]); return; }
    const v = Array.isArray(node.value) ? node.value[0] : node.value;
    if (!['is', 'contains', 'starts_with', 'ends_with', 'in', 'includes', 'includes_any', 'includes_all', 'changed_to'].includes(node.op) || v === undefined) return;
    const f = node.field;
    if (f === 'tags') ticket.tags.push(...(Array.isArray(node.value) ? node.value : [v]));
    else if (f === 'contact.groups') ticket.contact.groups.push(...(Array.isArray(node.value) ? node.value : [v]));
    else if (f.startsWith('contact.custom.')) { ticket.contact.custom = ticket.contact.custom || {}; ticket.contact.custom[f.slice(15)] = v; }
    else if (f.startsWith('contact.')) ticket.contact[f.slice(8)] = v;
    else if (f.startsWith('message.')) message[f.slice(8)] = v;
    else if (f.startsWith('custom.')) { ticket.custom = ticket.custom || {}; ticket.custom[f.slice(7)] = v; }
    else if (!f.includes('.') && !f.endsWith('_at')) ticket[f] = v;
  };
  walk(draft.conditions);
  const ev = { type, ticket };
  if (type.startsWith('message.')) ev.message = message;
  return ev;
}

