// Tiny DOM helpers. Text always goes in as text nodes (never innerHTML), so names, values and
// messages from the API cannot inject markup.
import { uniqueDetails, placeDetails } from './ruletree.js';

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  append(el, children);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else if (typeof v === 'boolean') el[k] = v;
    else el.setAttribute(k, String(v));
  }
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

let counter = 0;
export function uid(prefix = 'id') {
  counter += 1;
  return `${prefix}-${counter}`;
}

export function $(sel, root = document) { return root.querySelector(sel); }
export function $$(sel, root = document) { return [...root.querySelectorAll(sel)]; }

/** A labelled form control: <div class="field"><label>…</label>control hint</div>. */
export function field(label, control, hint) {
  if (!control.id) control.id = uid('f');
  const parts = [h('label', { for: control.id }, label), control];
  if (hint) {
    const hid = uid('hint');
    parts.push(h('span', { class: 'hint', id: hid }, hint));
    const prev = control.getAttribute('aria-describedby');
    control.setAttribute('aria-describedby', prev ? `${prev} ${hid}` : hid);
  }
  return h('div', { class: 'field' }, parts);
}

let statusTimer = null;
/** Polite feedback in the live region (and, for errors, the assertive one). */
export function announce(message, kind = 'ok') {
  const status = $('#status');
  const alert = $('#alert');
  if (kind === 'error') {
    alert.textContent = message;
    status.textContent = '';
  } else {
    alert.textContent = '';
    status.textContent = message;
  }
  status.className = `status ${kind}`;
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => { status.textContent = ''; }, 8000);
}

export function json(value) {
  return JSON.stringify(value);
}

export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

/** Show 422 details next to the controls they concern. Each control carries data-path (a rule
 *  path like `conditions.all[1].any[0].op`); a path with no control of its own falls back to its
 *  nearest ancestor path, and anything left over goes to the summary. Returns what was placed. */
export function showErrors(root, details, summary) {
  clearErrors(root);
  const list = uniqueDetails(details);
  const find = (p) => root.querySelector(`[data-path="${cssEscape(p)}"]`);
  const where = placeDetails(list, (p) => !!find(p));
  const leftovers = where.leftovers.map((d) => `${d.path || 'rule'}: ${d.reason}`);
  const placed = [];
  for (const { path, reason, at } of where.placed) {
    const target = find(at);
    const msg = h('p', { class: 'field-error', id: uid('err') }, reason);
    msg.dataset.errorFor = path;
    if (target.matches('input, select, textarea, button')) {
      const wrap = target.closest('.field');
      if (wrap) wrap.append(msg); else target.after(msg);
    } else {
      target.append(msg);
    }
    target.setAttribute('aria-invalid', 'true');
    const prev = target.getAttribute('aria-describedby');
    target.setAttribute('aria-describedby', prev ? `${prev} ${msg.id}` : msg.id);
    placed.push({ path, reason, target });
  }
  if (summary) {
    clear(summary);
    if (list.length) {
      summary.hidden = false;
      summary.append(h('h3', null, `The service did not accept this (${list.length} problem${list.length > 1 ? 's' : ''}):`));
      const ul = h('ul');
      for (const p of placed) {
        ul.append(h('li', null, h('a', {
          href: '#', onclick: (e) => { e.preventDefault(); p.target.focus(); },
        }, `${p.path || 'rule'}: ${p.reason}`)));
      }
      for (const text of leftovers) ul.append(h('li', null, text));
      summary.append(ul);
    } else {
      summary.hidden = true;
    }
  }
  return placed;
}

export function clearErrors(root) {
  for (const el of root.querySelectorAll('.field-error[data-error-for]')) el.remove();
  for (const el of root.querySelectorAll('[aria-invalid="true"]')) {
    el.removeAttribute('aria-invalid');
    const ids = (el.getAttribute('aria-describedby') || '').split(' ').filter((id) => id && document.getElementById(id));
    if (ids.length) el.setAttribute('aria-describedby', ids.join(' ')); else el.removeAttribute('aria-describedby');
  }
}

function cssEscape(s) {
  return window.CSS && CSS.escape ? CSS.escape(s) : s.replace(/["\\]/g, '\\$&');
}
