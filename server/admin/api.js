// The public /v1 API with the signed-in key. The key lives in sessionStorage only: it is gone
// when the tab closes and is never written to localStorage, cookies or the URL.
const KEY = 'deskflow.apiKey';

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set(key) { sessionStorage.setItem(KEY, key); },
  clear() { sessionStorage.removeItem(KEY); },
};

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `The service answered ${status}.`);
    this.status = status;
    this.code = err.code || (status ? `http_${status}` : 'network');
    this.details = err.details;
  }
}

export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (session.key) headers.Authorization = `Bearer ${session.key}`;
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch {
    throw new ApiError(0, { error: { code: 'network', message: 'The service did not answer. Is it running?' } });
  }
  const text = resp.status === 204 ? '' : await resp.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

/** Every item of a paged list ({"items", "next"}), following cursors. */
export async function listAll(path) {
  const items = [];
  let cursor = null;
  for (let i = 0; i < 100; i += 1) {
    const sep = path.includes('?') ? '&' : '?';
    const page = await api('GET', `${path}${sep}limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    items.push(...(page.items || []));
    if (!page.next) break;
    cursor = page.next;
  }
  return items;
}

export const enc = encodeURIComponent;
