// The webhook: where the service POSTs every update (signed), the delivery log, and the dead
// letters with "Resend" and "Resend all" (issue 18 item 6). Every route is admin-only
// (docs/api.md, Webhook): another key sees the API's 403 in a note, never a blank page.
//   GET/PUT/DELETE /v1/webhook, GET /v1/webhook/deliveries?state=&limit=&cursor=,
//   POST /v1/webhook/deliveries/{id}/resend, POST /v1/webhook/deliveries/resend?state=failed
import { api, enc } from './api.js';
import { h, append, clear, field, announce, showErrors, clearErrors } from './dom.js';
import { errorNote, readOnlyNote, confirmButton, when, NEEDS } from './settings_kit.js';

const PAGE = 20;
const STATES = [['', 'every state'], ['pending', 'pending (retrying)'], ['delivered', 'delivered'], ['failed', 'failed (dead letters)']];

export async function renderWebhooks(view, app) {
  clear(view);
  const setting = h('section', { class: 'card', id: 'webhook-setting', 'aria-labelledby': 'webhook-setting-h' },
    h('h2', { id: 'webhook-setting-h' }, 'Endpoint'), h('p', null, 'Loading…'));
  const dead = h('section', { class: 'card', id: 'webhook-dead', 'aria-labelledby': 'webhook-dead-h' });
  const log = h('section', { class: 'card', id: 'webhook-log', 'aria-labelledby': 'webhook-log-h' });
  append(view, [h('div', { class: 'view-head' }, h('h1', { id: 'webhooks-h' }, 'Webhook')),
    h('p', { class: 'lead' }, 'Every ticket update is POSTed to this URL, signed with the secret (X-Deskflow-Signature: sha256=<HMAC of the body>). ',
      'A failed delivery is retried for its retry window (24 hours unless the operator set another), then kept 30 days as a dead letter you can send again.'),
    readOnlyNote(app, NEEDS.webhook, 'the webhook and its deliveries'), setting, dead, log]);
  const refresh = async () => { await Promise.all([drawDead(dead, refresh), drawLog(log, refresh)]); };
  const ok = await drawSetting(setting, app, refresh);
  if (ok) await refresh(); else { dead.remove(); log.remove(); }
}

async function drawSetting(box, app, refresh) {
  let config = null;
  try {
    config = await api('GET', '/v1/webhook');
  } catch (err) {
    if (err.status !== 404) {
      clear(box).append(h('h2', { id: 'webhook-setting-h' }, 'Endpoint'), errorNote(err, 'the webhook', 'webhook-note'));
      return false;
    }
  }
  clear(box).append(h('h2', { id: 'webhook-setting-h' }, 'Endpoint'));
  box.append(config
    ? h('p', { id: 'webhook-current' }, 'Updates go to ', h('code', null, config.url), config.secret_set ? ', signed (the secret is set and never shown).' : '.',
      ' Set ', when(config.updated_at), '.')
    : h('p', { id: 'webhook-current' }, 'No webhook is set: updates are only in the feed (GET /v1/updates).'));
  const url = h('input', { type: 'url', id: 'webhook-url', value: config ? config.url : '', dataset: { path: 'url' }, autocomplete: 'off', spellcheck: 'false' });
  const secret = h('input', { type: 'password', id: 'webhook-secret', dataset: { path: 'secret' }, autocomplete: 'new-password' });
  const form = h('form', { class: 'inline-form', id: 'webhook-form', novalidate: true },
    field('URL', url, 'http(s); its host must be on the allow-list'),
    field('Signing secret', secret, config ? 'leave empty to keep the current one' : 'required; at most 256 characters'),
    h('button', { type: 'submit', class: 'primary' }, config ? 'Save endpoint' : 'Set endpoint'),
    config ? confirmButton('Remove', 'Remove the webhook', 'Press again to remove the webhook; pending updates then fail.', async () => {
      try {
        await api('DELETE', '/v1/webhook');
        announce('The webhook was removed.');
        await drawSetting(box, app, refresh);
        await refresh();
      } catch (err) { announce(`Could not remove: ${err.message}`, 'error'); }
    }) : null);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(form);
    const body = { url: url.value.trim() };
    if (secret.value) body.secret = secret.value;
    try {
      await api('PUT', '/v1/webhook', body);
      announce('The webhook was saved.');
      await drawSetting(box, app, refresh);
      box.querySelector('#webhook-url')?.focus();
    } catch (err) {
      const placed = showErrors(form, err.details || [{ path: 'url', reason: err.message }]);
      announce(`Not saved: ${err.message}`, 'error');
      (placed[0]?.target || url).focus();
    }
  });
  box.append(form);
  if (!app.can(NEEDS.webhook)) for (const el of form.elements) el.disabled = true;
  return true;
}

function deliveryRow(d, refresh, withResend) {
  const last = d.last_error || (d.last_status != null ? `HTTP ${d.last_status}` : '—');
  return h('tr', { dataset: { delivery: d.id, state: d.state } },
    h('td', null, h('code', null, d.id)),
    h('td', null, d.kind || '', d.kind === 'effect' && d.url ? h('div', { class: 'hint' }, `${d.method || 'POST'} `, h('code', null, d.url)) : null),
    h('td', null, h('span', { class: `state state-${d.state}` }, d.state)),
    h('td', { class: 'c-n' }, String(d.attempts ?? 0)),
    h('td', null, when(d.created_at)),
    h('td', null, when(d.last_attempt_at)),
    h('td', { class: 'last-result' }, last),
    h('td', null,
      withResend ? h('button', { type: 'button', class: 'quiet', 'aria-label': `Resend ${d.id}`, onclick: async (e) => {
        e.target.disabled = true;
        try {
          await api('POST', `/v1/webhook/deliveries/${enc(d.id)}/resend`);
          announce(`${d.id} is queued again.`);
          await refresh();
        } catch (err) {
          e.target.disabled = false;
          announce(`Could not resend ${d.id}: ${err.message}`, 'error');
        }
      } }, 'Resend') : null,
      h('details', null, h('summary', null, 'Body'), h('pre', null, JSON.stringify(d.body, null, 2)))));
}

function deliveryTable(id, caption) {
  const body = h('tbody');
  const table = h('table', { class: 'deliveries', id },
    h('caption', { class: 'sr-only' }, caption),
    h('thead', null, h('tr', null, ['Delivery', 'Kind', 'State', 'Attempts', 'Created', 'Last attempt', 'Last result', '']
      .map((t) => h('th', { scope: 'col' }, t)))), body);
  return { table, body };
}

/** A paged list: `load(cursor)` answers {items, next}; "More" follows `next`. */
async function pagedInto(box, tableId, caption, path, refresh, withResend, emptyText) {
  const { table, body } = deliveryTable(tableId, caption);
  const note = h('p', { class: 'hint' });
  const more = h('button', { type: 'button', class: 'quiet', hidden: true }, 'Older deliveries');
  box.append(table, note, more);
  let cursor = null;
  const load = async () => {
    more.disabled = true;
    try {
      const got = await api('GET', `${path}${path.includes('?') ? '&' : '?'}limit=${PAGE}${cursor ? `&cursor=${enc(cursor)}` : ''}`);
      for (const d of got.items || []) body.append(deliveryRow(d, refresh, withResend));
      cursor = got.next;
      more.hidden = !cursor;
      table.hidden = !body.childElementCount;
      note.textContent = body.childElementCount ? '' : emptyText;
      return got.items || [];
    } catch (err) {
      table.hidden = true;
      note.replaceWith(errorNote(err, 'the deliveries'));
      return [];
    } finally { more.disabled = false; }
  };
  more.addEventListener('click', load);
  return load();
}

async function drawDead(box, refresh) {
  const head = h('div', { class: 'view-head' }, h('h2', { id: 'webhook-dead-h' }, 'Dead letters'));
  clear(box).append(head, h('p', { class: 'lead' }, 'Deliveries that failed for their whole retry window (or were refused by the address rules). Resend queues one again with a fresh window.'));
  const items = await pagedInto(box, 'dead-table', 'Failed deliveries', '/v1/webhook/deliveries?state=failed', refresh, true, 'No dead letters.');
  if (items.length) {
    head.append(confirmButton('Resend all', 'Resend every dead letter', 'Press again to queue every dead letter again (at most 1,000).', async () => {
      try {
        const got = await api('POST', '/v1/webhook/deliveries/resend?state=failed');
        announce(`${got.resent} dead letter${got.resent === 1 ? ' is' : 's are'} queued again.`);
        await refresh();
      } catch (err) { announce(`Could not resend: ${err.message}`, 'error'); }
    }, 'primary'));
  }
}

async function drawLog(box, refresh) {
  const state = h('select', { id: 'delivery-state' }, STATES.map(([v, t]) => h('option', { value: v, selected: box.dataset.state === v }, t)));
  const list = h('div', { id: 'delivery-list', 'aria-live': 'polite' });
  clear(box).append(h('h2', { id: 'webhook-log-h' }, 'Delivery log'),
    h('div', { class: 'filters' }, field('Show', state), h('button', { type: 'button', class: 'quiet', onclick: () => refresh() }, 'Refresh')), list);
  const draw = async () => {
    box.dataset.state = state.value;
    clear(list);
    const q = state.value ? `?state=${enc(state.value)}` : '';
    await pagedInto(list, 'delivery-table', 'Deliveries, newest first', `/v1/webhook/deliveries${q}`, refresh, true, 'No deliveries.');
  };
  state.addEventListener('change', draw);
  await draw();
}
