// Views and their URLs: every view of the managers' page has a hash route (`/admin#/runs`,
// `#/rules/<id>`), so the back button, a reload and a link shared with a colleague land on it.
// parseRoute / routeHash are pure (tests/web/js/ runs them under Node); the rest wires the
// registry into the page and touches the DOM only when called.

/** name -> { render(view element, app) -> void | Promise, label }. app.js registers the built-in
 *  views; another module adds its own with registerView (see the top of app.js). */
//  (No prototype: a hash names the view, and `#/constructor` must not find Object's members.)
export const VIEWS = Object.create(null);

let onRegister = null;

/** Register a view: `render(viewElement, app)` draws it into <section id="view-<name>">, shown at
 *  `#/<name>` and by a tab labelled `opts.label`. The section and the tab are created when
 *  index.html has none (`opts.tab: false`: no tab, a view reached by its link only). */
export function registerView(name, render, opts = {}) {
  if (!/^[a-z][a-z0-9-]*$/.test(name)) throw new Error(`A view name is lower-case letters, digits and -: not ${JSON.stringify(name)}`);
  VIEWS[name] = { render, label: opts.label || name };
  if (typeof document !== 'undefined') addChrome(name, opts);
  onRegister?.(name);
}

function addChrome(name, opts) {
  const main = document.getElementById('main');
  if (main && !document.getElementById(`view-${name}`)) {
    const section = document.createElement('section');
    section.id = `view-${name}`;
    section.className = 'view';
    section.hidden = true;
    section.setAttribute('aria-labelledby', `${name}-h`);
    main.append(section);
  }
  const tabs = document.getElementById('tabs');
  if (tabs && opts.tab !== false && !tabs.querySelector(`.tab[data-tab="${name}"]`)) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'tab';
    b.dataset.tab = name;
    b.textContent = opts.label || name;
    tabs.append(b);
  }
}

/** Called with a view's name whenever one is registered (app.js re-routes when the view the URL
 *  names arrives after the page has routed). */
export function whenRegistered(fn) { onRegister = fn; }

/** `#/rules/r-1?x=1` -> {view: 'rules', id: 'r-1', params: {x: '1'}}; '', '#', '#/' and an
 *  in-page anchor such as '#main' (no '/') -> the rules list. Each part is URI-decoded; a
 *  malformed escape keeps the raw text. */
export function parseRoute(hash) {
  let s = String(hash || '').replace(/^#/, '');
  s = s.startsWith('/') ? s.slice(1) : '';
  let query = '';
  const q = s.indexOf('?');
  if (q >= 0) { query = s.slice(q + 1); s = s.slice(0, q); }
  const parts = s.split('/').filter((p) => p !== '').map(decode);
  const params = {};
  for (const pair of query.split('&')) {
    if (!pair) continue;
    const eq = pair.indexOf('=');
    const k = decode((eq >= 0 ? pair.slice(0, eq) : pair).replace(/\+/g, ' '));
    params[k] = eq >= 0 ? decode(pair.slice(eq + 1).replace(/\+/g, ' ')) : '';
  }
  return { view: parts[0] || 'rules', id: parts.length > 1 ? parts.slice(1).join('/') : null, params };
}

/** The hash of a route: routeHash('rules', 'r 1') -> '#/rules/r%201'; params with empty values
 *  are left out. parseRoute(routeHash(v, id, p)) gives v, id and p back. */
export function routeHash(view, id = null, params = {}) {
  let out = `#/${encodeURIComponent(view)}`;
  if (id !== null && id !== undefined && id !== '') out += `/${encodeURIComponent(id)}`;
  const q = Object.entries(params).filter(([, v]) => v !== '' && v !== null && v !== undefined)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
  return q ? `${out}?${q}` : out;
}

function decode(s) {
  try { return decodeURIComponent(s); } catch { return s; }
}
