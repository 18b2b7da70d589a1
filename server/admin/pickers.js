// Pickers of what exists: the editor offers the workspace's scripts, SLA policies and contact
// groups by name (GET /v1/scripts, /v1/sla-policies, /v1/groups) instead of a box to type into.
// A list that cannot be read (a 404 from a service without scripts, a network error) leaves a
// text box, so a name can still be typed; a stored name that no longer exists stays selected and
// says so (the service's reference check names it in a 422 when the rule is enabled).
import { listAll } from './api.js';
import { h } from './dom.js';

/** Empty name lists, filled by loadNames. `loaded.x` says whether list x was read. */
export function emptyNames() {
  return { groups: [], scripts: [], policies: [], calendars: [], loaded: { groups: false, scripts: false, policies: false } };
}

/** Read the three lists into `names`; `changed(list)` is called as each arrives ('groups',
 *  'policies' or 'scripts'). */
export function loadNames(names, changed) {
  listAll('/v1/groups').then((gs) => {
    names.groups = gs.map((g) => g.name).sort();
    names.loaded.groups = true;
    changed('groups');
  }).catch(() => {});
  listAll('/v1/sla-policies').then((ps) => {
    names.policies = ps.map((p) => p.name);
    names.calendars = ps.filter((p) => p.business_hours).map((p) => p.name);
    names.loaded.policies = true;
    changed('policies');
  }).catch(() => {});
  listAll('/v1/scripts').then((ss) => {
    names.scripts = ss.map((s) => s.name).sort();
    names.loaded.scripts = true;
    changed('scripts');
  }).catch(() => {});
}

/** A <select> of `names` with "choose…" first; `value` not among them is kept, marked. */
export function namePicker({ names, value, what, dataset, label, onpick, id }) {
  const current = value == null ? '' : String(value);
  const sel = h('select', { id: id || null, dataset, 'aria-label': label || null,
    onchange: (e) => onpick(e.target.value) },
  h('option', { value: '', selected: current === '' }, names.length ? `choose a ${what}…` : `no ${what} exists yet`),
  names.map((n) => h('option', { value: n, selected: current === n }, n)));
  if (current !== '' && !names.includes(current)) {
    sel.append(h('option', { value: current, selected: true }, `${current} (no such ${what})`));
  }
  return sel;
}
