// The managers' page: sign-in, tabs and routing. The rules list (rules_list.js), the editor and the
// other views live in their own modules. Everything here calls only the public /v1 API with the signed-in key.
//
// Adding a view (a tab with its own URL, `/admin#/<name>`) is one line in the view's module:
//
//   import { registerView } from './router.js';
//   registerView('webhooks', renderWebhooks, { label: 'Webhooks' });
//
// where `renderWebhooks(viewElement, app)` draws the view into its <section> (it may return a
// promise; give its <h1> an id, focus lands on it). The section and the tab button are created
// when index.html has none; load the module with one <script type="module"> line in index.html
// (or an import here). The router shows the view at `#/webhooks`, the back button and a reload
// keep it, and `#/webhooks/<id>?k=v` reaches the render as app.route = {view, id, params}.
import { api, ApiError, listAll, session, enc } from './api.js';
import { clear, $, $$, announce, clearErrors } from './dom.js';
import { loadVocab } from './vocab.js';
import { openEditor } from './editor.js';
import { renderRules } from './rules_list.js';
import { renderRuns, renderGroups } from './panels.js';
import { renderScripts } from './scripts_view.js';
import { renderWebhooks } from './webhooks_view.js';
import { renderSettings } from './settings_view.js';
import { renderSla } from './sla_view.js';
import { VIEWS, registerView, whenRegistered, parseRoute, routeHash } from './router.js';

const RANK = { viewer: 1, manager: 2, developer: 3, admin: 4 };

export const app = {
  role: null,
  workspace: null,
  rules: [],
  unused: new Set(),   // ids of rules GET /v1/rules?unused_for=30d lists
  query: '',
  show: 'all',
  /** At least this role? (`ingest` ranks below everything.) */
  can(role) { return (RANK[this.role] || 0) >= RANK[role]; },
};

// ------------------------------------------------------------------ sign-in

async function signIn(key) {
  session.set(key);
  try {
    const ws = await whoAmI();
    app.role = ws.role;
    app.workspace = ws;
  } catch (err) {
    session.clear();
    if (err.status === 401) throw new Error('This key is unknown or has been revoked.');
    if (err.status === 403) throw new Error('This key may only submit events. Sign in with a viewer, manager or higher key.');
    throw err;
  }
  await loadVocab();
  $('#signin').hidden = true;
  $('#tabs').hidden = false;
  $('#who').hidden = false;
  $('#who-text').textContent = `${app.workspace.name} · ${app.role}${app.can('manager') ? '' : ' (read only)'}`;
  document.body.dataset.role = app.role;
  route(location.hash);
  announce(`Signed in to ${app.workspace.name} as ${app.role}.`);
}

/** The key's workspace and role from GET /v1/workspace (viewer or above; an ingest key gets 403).
 *  It replaced a probe that posted an empty rule to tell a manager from a viewer. */
async function whoAmI() {
  return api('GET', '/v1/workspace');
}

function signOut() {
  session.clear();
  app.role = null;
  app.workspace = null;
  app.rules = [];
  for (const v of $$('.view')) { v.hidden = true; clear(v); }
  $('#tabs').hidden = true;
  $('#who').hidden = true;
  $('#signin').hidden = false;
  $('#api-key').value = '';
  history.replaceState(null, '', location.pathname + location.search);
  $('#api-key').focus();
  announce('Signed out. The key was removed from this tab.');
}

// ------------------------------------------------------------------ tabs

// The built-in views (router.js keeps the registry; the top of this file says how to add one).
registerView('rules', (view) => renderRules(view), { label: 'Rules' });
registerView('runs', renderRuns, { label: 'Runs' });
registerView('groups', renderGroups, { label: 'Contact groups' });
registerView('sla', renderSla, { label: 'SLA policies' });
registerView('scripts', renderScripts, { label: 'Scripts' });
registerView('webhooks', renderWebhooks, { label: 'Webhook' });
registerView('settings', renderSettings, { label: 'Allow-list & secrets' });
export { VIEWS, registerView };

let shown = '';  // the hash of what is on screen (a refused "back" puts it back)

// Extra parts other modules add to the rule list and the editor (charts_view.js: sparklines, a
// rule's fires per day): table(tbody, rules) after each draw; editor(view, rule) on each open.
export const HOOKS = { table: [], editor: [] };

/** Make `hash` the page's URL, as a new history entry unless it is already. */
function go(hash) {
  if (location.hash !== hash) history.pushState(null, '', hash);
  shown = hash;
}

/** Go to a view's URL (a new history entry) and show it. */
export function navigate(hash, focus = true) {
  go(hash);
  return route(hash, focus);
}

/** Show what a hash names: `#/rules/<id>` (or `#/rules/new`) the editor, `#/runs?rule=<id>` the
 *  runs filtered to a rule, `#/<view>` any registered view; before sign-in, nothing. */
async function route(hash, focus = true) {
  if (!app.role) return;
  shown = location.hash;
  const r = parseRoute(hash);
  app.route = r;
  if (!VIEWS[r.view]) {
    // (A view registered later is shown when it arrives: whenRegistered below.)
    announce(`There is no page “${r.view}”; showing the rules.`, 'error');
    return showTab('rules', focus);
  }
  if (r.view === 'rules' && r.id) return openRule(r.id);
  if (r.view === 'runs' && (r.params.rule || r.params.ticket || r.params.outcome)) {
    app.runFilters = { ticket: r.params.ticket || '', rule: r.params.rule || '', outcome: r.params.outcome || '' };
  }
  return showTab(r.view, focus);
}

/** The editor at `#/rules/<id>`: the rule from the list (read first when a link or a reload
 *  opens the editor: the backtest names the other rules by it), else from the API. */
async function openRule(id) {
  if (id === 'new') { if (app.can('manager')) return showEditor(null); return navigate(routeHash('rules')); }
  if (!app.rules.length) app.rules = await listAll('/v1/rules').catch(() => []);
  let rule = app.rules.find((r) => r.id === id);
  if (!rule) {
    try {
      rule = await api('GET', `/v1/rules/${enc(id)}`);
    } catch (err) {
      announce(err.status === 404 ? `There is no rule ${id} in this workspace.` : `Could not load rule ${id}: ${err.message}`, 'error');
      history.replaceState(null, '', routeHash('rules'));
      return showTab('rules');
    }
  }
  return showEditor(rule);
}

/** Mark tab `name` current and show only the section `view-<shown>`. */
function markTab(name, shown = name) {
  for (const b of $$('#tabs .tab')) {
    if (b.dataset.tab === name) b.setAttribute('aria-current', 'page'); else b.removeAttribute('aria-current');
  }
  for (const v of $$('.view')) v.hidden = v.id !== `view-${shown}`;
}

function showTab(name, focus = true) {
  markTab(name);
  const view = $(`#view-${name}`);
  const done = Promise.resolve(VIEWS[name].render(view, app));
  // Move focus to the new view's heading so keyboard and screen-reader users land in it.
  const heading = view.querySelector('h1');
  if (focus && heading) { heading.setAttribute('tabindex', '-1'); heading.focus(); }
  return done;
}

/** Show the editor (it is part of the Rules tab) at `#/rules/<id>` (`#/rules/new`). */
export function showEditor(rule, opts = {}) {
  go(routeHash('rules', rule?.id || 'new'));
  markTab('rules', 'editor');
  openEditor($('#view-editor'), app, rule, {
    ...opts,
    showRuns: (id) => navigate(routeHash('runs', null, { rule: id })),
    onClose: (changedId) => { navigate(routeHash('rules'), !changedId).then(() => focusRule(changedId)); },
    // A new rule's first save gives it its own URL (in place of #/rules/new, not a new entry).
    onSaved: (id) => { history.replaceState(null, '', routeHash('rules', id)); shown = location.hash; },
  });
  for (const hook of HOOKS.editor) hook($('#view-editor'), rule);
}

// Leaving an editor with unsaved changes takes a second click of a tab or of the back button
// (the editor's own buttons ask for themselves, then navigate).
let leaveArmed = 0;
function mayLeaveEditor() {
  const editing = !$('#view-editor').hidden && app.editorDirty?.();
  if (!editing || Date.now() - leaveArmed <= 6000) { leaveArmed = 0; return true; }
  leaveArmed = Date.now();
  announce('The rule has unsaved changes. Click the tab again (or go back again) to leave without saving.', 'error');
  return false;
}

export function focusRule(id) {
  const el = id && $(`#view-rules [data-rule-id="${CSS.escape(id)}"] .rule-name-text`);
  if (el) { el.setAttribute('tabindex', '-1'); el.focus(); }
}

// ------------------------------------------------------------------ start

function start() {
  $('#signin-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const input = $('#api-key');
    const errEl = $('#signin-error');
    errEl.hidden = true;
    input.removeAttribute('aria-invalid');
    const key = input.value.trim();
    if (!key) {
      errEl.textContent = 'Paste an API key first.';
      errEl.hidden = false;
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    try {
      await signIn(key);
      input.value = '';
    } catch (err) {
      errEl.textContent = err.message;
      errEl.hidden = false;
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    }
  });
  $('#sign-out').addEventListener('click', signOut);
  // One listener for every tab, those registerView adds later included.
  $('#tabs').addEventListener('click', (e) => {
    const b = e.target.closest('.tab');
    if (b && mayLeaveEditor()) navigate(routeHash(b.dataset.tab));
  });
  // The back and forward buttons, and a hash typed or followed.
  window.addEventListener('hashchange', () => {
    // Only `#/...` is a route: `#main` (the skip link) is an anchor in the page.
    if (!app.role || (location.hash && !location.hash.startsWith('#/'))) return;
    if (!mayLeaveEditor()) { history.pushState(null, '', shown); return; }
    route(location.hash);
  });
  whenRegistered((name) => { if (app.role && parseRoute(location.hash).view === name && $(`#view-${name}`)?.hidden) route(location.hash); });
  if (session.key) {
    signIn(session.key).catch((err) => {
      $('#signin-error').textContent = err.message;
      $('#signin-error').hidden = false;
    });
  } else {
    $('#api-key').focus();
  }
}

export { ApiError, clearErrors };
start();
