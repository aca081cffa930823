// Talking to the JSON API: the session's CSRF token on state-changing requests, a redirect to
// the login page when the session is missing, and errors turned into readable messages.

let csrf = document.querySelector('meta[name="flow-csrf"]')?.getAttribute('content') || '';
let session = null;

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function toLogin() {
  const next = location.pathname + location.search;
  location.assign(`/login?next=${encodeURIComponent(next)}`);
}

// Reads the session once (its CSRF token); tolerates a server without the endpoint.
export async function loadSession() {
  if (session) return session;
  session = fetch('/api/session', { credentials: 'same-origin', headers: { Accept: 'application/json' } })
    .then(async r => {
      if (r.status === 401) { toLogin(); return {}; }
      if (!r.ok) return {};
      const body = await r.json();
      if (body && typeof body.csrf === 'string' && body.csrf) csrf = body.csrf;
      return body || {};
    })
    .catch(() => ({}));
  return session;
}

async function request(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') {
    await loadSession();
    headers['X-Flow-CSRF'] = csrf;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
  }
  let response;
  try {
    response = await fetch(path, {
      method, headers, credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, 'network', `The server could not be reached (${e.message}).`);
  }
  if (response.status === 401) {
    toLogin();
    throw new ApiError(401, 'unauthorized', 'Please log in.');
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) {
    const err = data && data.error;
    const message = err && err.message ? err.message : `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, err && err.code ? err.code : 'http', message);
  }
  return data;
}

export const get = path => request('GET', path);
export const post = (path, body) => request('POST', path, body ?? {});

// Encodes one path segment (ids and keys come from data).
export const seg = value => encodeURIComponent(String(value));

// Query string from an object, skipping empty values; arrays repeat the key.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === null || v === undefined || v === '') continue;
    for (const one of Array.isArray(v) ? v : [v]) q.append(k, one);
  }
  const text = q.toString();
  return text ? `?${text}` : '';
}

// Subscribes to the live event stream. handlers: {run, node, removed, catalog, resync, open}.
// Reconnects by itself (EventSource does); after a reconnect the page refetches (resync),
// since events may have been missed. `open` is called each time the stream opens, the first
// time too: a page showing something that changes fast (a run) refetches then, since what
// changed before the server had subscribed it reaches no handler. Returns a function that
// closes the stream.
export function events(handlers, params = {}) {
  const indicator = document.getElementById('live');
  const set = (text, cls) => {
    if (!indicator) return;
    indicator.textContent = text;
    indicator.className = `live ${cls}`;
  };
  let opened = false;
  const source = new EventSource(`/api/events${query(params)}`, { withCredentials: true });
  source.addEventListener('open', () => {
    set('live', 'on');
    if (handlers.open) handlers.open();
    if (opened && handlers.resync) handlers.resync();
    opened = true;
  });
  source.addEventListener('error', () => set('reconnecting…', 'off'));
  for (const name of ['run', 'node', 'removed', 'catalog', 'resync']) {
    source.addEventListener(name, ev => {
      const fn = handlers[name];
      if (!fn) return;
      let data = {};
      try { data = ev.data ? JSON.parse(ev.data) : {}; } catch { return; }
      fn(data);
    });
  }
  return () => source.close();
}
