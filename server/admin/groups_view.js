// A group's contacts, companies and tickets on the managers' page (issue 19: "browse tickets,
// contacts and companies by group"). Its own module, hooked into the page by one <script> line in
// index.html: it watches the Contact groups view and, each time that view is drawn, adds a
// "Browse a group" section under it. It only reads (viewer and up), through the public API:
// GET /v1/contacts?group=, /v1/companies?group=, /v1/tickets?group= (each paged, "More" follows
// the cursor). Text goes in as text nodes only (dom.js), never markup.

import { api, enc } from './api.js';
import { h, clear } from './dom.js';

const PAGE = 50;

const LISTS = [
  { key: 'contacts', title: 'Contacts', path: '/v1/contacts',
    cols: [['ID', (c) => c.id], ['Name', (c) => c.name], ['Email', (c) => c.email]] },
  { key: 'companies', title: 'Companies', path: '/v1/companies',
    cols: [['ID', (c) => c.id], ['Name', (c) => c.name], ['Domain', (c) => c.domain]] },
  { key: 'tickets', title: 'Tickets', path: '/v1/tickets',
    cols: [['ID', (t) => t.id], ['Subject', (t) => t.subject], ['Status', (t) => t.status],
      ['Contact', (t) => (t.contact || {}).id],
      ['Company', (t) => ((t.contact || {}).company || {}).name || ((t.contact || {}).company || {}).id]] },
];

function message(err) {
  if (err.code === 'index_building') return 'Contacts stored by an older version are being indexed; try again in a moment.';
  return err.message;
}

async function fill(box, list, group) {
  clear(box);
  const rows = h('tbody');
  const more = h('button', { type: 'button', class: 'quiet', hidden: true }, `More ${list.title.toLowerCase()}`);
  const table = h('table', { id: `group-${list.key}` },
    h('caption', null, `${list.title} in ${group}`),
    h('thead', null, h('tr', null, list.cols.map(([name]) => h('th', { scope: 'col' }, name)))),
    rows);
  const note = h('p', { class: 'lead' });
  box.append(table, note, more);
  let cursor = null;
  async function page() {
    more.disabled = true;
    try {
      const q = `?group=${enc(group)}&limit=${PAGE}${cursor ? `&cursor=${enc(cursor)}` : ''}`;
      const got = await api('GET', `${list.path}${q}`);
      for (const item of got.items || []) {
        rows.append(h('tr', { dataset: { id: item.id } }, list.cols.map(([, read]) => h('td', null, read(item) ?? ''))));
      }
      cursor = got.next;
      more.hidden = !cursor;
      note.textContent = rows.childElementCount ? '' : `No ${list.title.toLowerCase()} in ${group}.`;
    } catch (err) {
      note.className = 'error-text';
      note.textContent = `Could not load ${list.title.toLowerCase()}: ${message(err)}`;
    } finally {
      more.disabled = false;
    }
  }
  more.addEventListener('click', page);
  await page();
}

function browseSection() {
  const input = h('input', { id: 'browse-group', name: 'browse-group', list: 'browse-group-names',
    autocomplete: 'off', spellcheck: 'false', required: true });
  const names = h('datalist', { id: 'browse-group-names' });
  const out = h('div', { id: 'group-browse-results', 'aria-live': 'polite' });
  const form = h('form', { id: 'group-browse-form', novalidate: true },
    h('label', { for: 'browse-group' }, 'Group'), ' ', input, names, ' ',
    h('button', { type: 'submit', class: 'primary' }, 'Show'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const group = input.value.trim();
    clear(out);
    if (!group) { out.append(h('p', { class: 'error-text' }, 'Type a group name.')); return; }
    const boxes = LISTS.map((list) => h('div', { class: 'group-list', dataset: { list: list.key } }));
    out.append(...boxes);
    await Promise.all(LISTS.map((list, i) => fill(boxes[i], list, group)));
  });
  api('GET', '/v1/groups?limit=500').then((got) => {
    for (const g of got.items || []) names.append(h('option', { value: g.name }));
  }).catch(() => {});
  return h('section', { id: 'group-browse', class: 'card', 'aria-labelledby': 'group-browse-h' },
    h('h2', { id: 'group-browse-h' }, 'Browse a group'),
    h('p', { class: 'lead' }, "The contacts and the companies in a group, and the tickets of either."),
    form, out);
}

function hook() {
  const view = document.getElementById('view-groups');
  if (!view) return;
  // renderGroups (panels.js) clears and redraws the view: add the section again each time.
  new MutationObserver(() => {
    if (!view.hidden && view.childElementCount && !view.querySelector('#group-browse')) view.append(browseSection());
  }).observe(view, { childList: true, attributes: true, attributeFilter: ['hidden'] });
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', hook);
else hook();
