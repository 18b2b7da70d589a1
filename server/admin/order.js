// Reordering the rules list by dragging a row, or by keyboard: focus a row's handle, press Space
// to pick the rule up, the arrow keys (Home/End) to move it, Space or Enter to drop it, Escape to
// put it back. Each drop is ONE PUT /v1/rules/order; every move is announced in the live region.
// `moved` is pure (tests/web/test_admin_order.py calls it in the page).
import { announce } from './dom.js';

/** `ids` with the id at `from` moved to index `to` (a new array). */
export function moved(ids, from, to) {
  const out = [...ids];
  const [id] = out.splice(from, 1);
  out.splice(Math.max(0, Math.min(to, out.length)), 0, id);
  return out;
}

/** Wire drag and keyboard reordering into a rules table body. `drop(ids, rule, position)` sends
 *  the new order; `restore()` redraws the list as it was. Rows carry data-rule-id; each row's
 *  handle is a button.drag inside it. */
export function wireReorder(tbody, rules, drop, restore) {
  const ids = () => [...tbody.querySelectorAll('tr[data-rule-id]')].map((tr) => tr.dataset.ruleId);
  const byId = Object.fromEntries(rules.map((r) => [r.id, r]));
  const original = rules.map((r) => r.id);
  let dragged = null;

  for (const tr of tbody.querySelectorAll('tr[data-rule-id]')) {
    const handle = tr.querySelector('button.drag');
    if (!handle) continue;
    tr.draggable = true;
    tr.addEventListener('dragstart', (e) => {
      dragged = tr;
      tr.classList.add('dragging');
      e.dataTransfer.effectAllowed = 'move';
      e.dataTransfer.setData('text/plain', tr.dataset.ruleId);
    });
    tr.addEventListener('dragend', () => { tr.classList.remove('dragging'); dragged = null; });
    tr.addEventListener('dragover', (e) => {
      if (!dragged || dragged === tr) return;
      e.preventDefault();
      const box = tr.getBoundingClientRect();
      const after = e.clientY > box.top + box.height / 2;
      tbody.insertBefore(dragged, after ? tr.nextSibling : tr);
    });
    tr.addEventListener('drop', (e) => { e.preventDefault(); });
    handle.addEventListener('keydown', (e) => keyMove(e, tr, handle));
  }
  tbody.addEventListener('drop', (e) => {
    e.preventDefault();
    const id = e.dataTransfer.getData('text/plain');
    if (!byId[id]) return;
    finish(id);
  });

  function finish(id) {
    const now = ids();
    if (now.join('\u0000') === original.join('\u0000')) { restore(); return; }
    drop(now, byId[id], now.indexOf(id) + 1);
  }

  let grabbed = null;
  function keyMove(e, tr, handle) {
    const id = tr.dataset.ruleId;
    const name = byId[id].name;
    const n = original.length;
    if (e.key === ' ' || e.key === 'Enter') {
      e.preventDefault();
      if (grabbed !== tr) {
        grabbed = tr;
        tr.classList.add('grabbed');
        handle.setAttribute('aria-pressed', 'true');
        announce(`Picked up “${name}”, position ${ids().indexOf(id) + 1} of ${n}. Arrow keys move it; Space drops it; Escape cancels.`);
      } else {
        grabbed = null;
        finish(id);
      }
      return;
    }
    if (grabbed !== tr) return;
    if (e.key === 'Escape') {
      e.preventDefault();
      grabbed = null;
      restore(id);
      announce(`Put “${name}” back at position ${original.indexOf(id) + 1}.`);
      return;
    }
    const at = ids().indexOf(id);
    const to = { ArrowUp: at - 1, ArrowDown: at + 1, Home: 0, End: n - 1 }[e.key];
    if (to === undefined) return;
    e.preventDefault();
    if (to < 0 || to >= n || to === at) return;
    const rows = [...tbody.querySelectorAll('tr[data-rule-id]')];
    if (to < at) tbody.insertBefore(tr, rows[to]); else tbody.insertBefore(tr, rows[to].nextSibling);
    handle.focus();
    announce(`“${name}”: position ${to + 1} of ${n}. Space drops it here.`);
  }
}
