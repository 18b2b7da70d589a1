// Small pieces the settings views share (webhook, allow-list and secrets, scripts): what to say
// when the key's role may not read or change a setting, a press-twice button, and a paged table
// that follows the API's `next` cursor. Text goes in as text nodes only (dom.js).
import { h, announce } from './dom.js';

/** The role each setting's routes need, as docs/api.md's role table has it. */
export const NEEDS = {
  webhook: 'admin', allowlistRead: 'developer', allowlistWrite: 'admin', secrets: 'admin',
  scriptWrite: 'developer', ruleWrite: 'manager',
};

/** A note for a setting this key may not read: the API's 403 message and the role it needs.
 *  Every other error is shown with its message, so a view is never left blank. */
export function errorNote(err, what, id) {
  const text = err.status === 403
    ? `Your key may not see ${what}: ${err.message}`
    : `Could not load ${what}: ${err.message}`;
  return h('p', { class: err.status === 403 ? 'note' : 'error-text', id, dataset: { status: String(err.status || '') } }, text);
}

/** A line saying the signed-in role may look but not change this, and who may. */
export function readOnlyNote(app, role, what) {
  if (app.can(role)) return null;
  return h('p', { class: 'note read-only' }, `Read only: ${what} can be changed with an ${role === 'admin' ? 'admin' : role} key; yours is ${app.role}.`);
}

/** A button that asks to be pressed again (within 5 s) before it acts. */
export function confirmButton(label, ariaLabel, confirmText, act, cls = 'quiet danger') {
  const btn = h('button', { type: 'button', class: cls, 'aria-label': ariaLabel }, label);
  let timer = null;
  btn.addEventListener('click', async () => {
    if (btn.dataset.armed !== '1') {
      btn.dataset.armed = '1';
      btn.textContent = `Confirm ${label.toLowerCase()}`;
      btn.setAttribute('aria-label', `Confirm: ${ariaLabel.charAt(0).toLowerCase()}${ariaLabel.slice(1)}`);
      announce(confirmText);
      timer = setTimeout(() => {
        if (!btn.isConnected) return;
        btn.dataset.armed = '';
        btn.textContent = label;
        btn.setAttribute('aria-label', ariaLabel);
      }, 5000);
      return;
    }
    clearTimeout(timer);
    btn.dataset.armed = '';
    btn.disabled = true;
    try { await act(); } finally { if (btn.isConnected) { btn.disabled = false; btn.textContent = label; btn.setAttribute('aria-label', ariaLabel); } }
  });
  return btn;
}

/** "a moment ago"-free times: the ISO string, shortened, with the full one on hover. */
export function when(iso) {
  if (!iso) return h('span', null, '—');
  const d = new Date(iso);
  const text = Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
  return h('time', { datetime: iso, title: iso }, text);
}
