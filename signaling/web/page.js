// page.js: what the views of the page share: DOM and status helpers, the
// hash route, error texts and the access token.

export const $ = (id) => document.getElementById(id);
export const ROOM_RE = /^[A-Za-z0-9_.-]{1,64}$/;
// Errors after which retrying with the same token cannot succeed.
export const NO_RETRY = new Set(['unauthorized', 'room_mismatch', 'forbidden', 'room_full', 'no_token']);

export function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
  const parts = path.split('/').filter(Boolean);
  let room = '';
  try {
    room = decodeURIComponent(parts[1] || '');
  } catch {
    room = '';
  }
  return { view: parts[0] || 'home', room, params };
}

export function setStatus(el, text, kind = '') {
  el.textContent = text;
  el.className = kind ? `status ${kind}` : 'status';
}

function randomId() {
  const b = new Uint8Array(4);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

// FRIENDLY explains the protocol errors a viewer or broadcaster can fix.
const FRIENDLY = {
  unauthorized: 'The server refused the access token',
  room_mismatch: 'The access token is for another room',
  forbidden: 'The access token does not allow this',
  room_full: 'The room is full',
  rate_limited: 'Too many attempts from this network; wait a minute',
  server_shutting_down: 'The server is restarting',
};

export function describe(err) {
  if (!err) return 'unknown error';
  if (err.code && FRIENDLY[err.code]) return `${FRIENDLY[err.code]} (${err.message}).`;
  return err.message || String(err);
}

export class PageError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

// getToken returns ?token= from the hash, or asks /dev/token (dev mode only).
// A token from the link is moved out of the address bar (and so out of the
// history and of links copied from it) into this tab's session storage.
export async function getToken(room, params, publish) {
  const key = `halo-token:${publish ? 'live' : 'watch'}:${room}`;
  const given = params.get('token');
  if (given) {
    try { sessionStorage.setItem(key, given); } catch { /* storage disabled */ }
    if (location.hash.includes('token=')) {
      const [path, query = ''] = location.hash.split('?');
      const rest = new URLSearchParams(query);
      rest.delete('token');
      const q = rest.toString();
      history.replaceState(history.state, '', `${location.pathname}${location.search}${path}${q ? `?${q}` : ''}`);
    }
    return given;
  }
  let kept = null;
  try { kept = sessionStorage.getItem(key); } catch { /* storage disabled */ }
  if (kept) return kept;
  const q = new URLSearchParams({ room, identity: `${publish ? 'host' : 'viewer'}-${randomId()}` });
  if (publish) q.set('publish', '1');
  let res;
  try {
    res = await fetch(`/dev/token?${q}`, { cache: 'no-store' });
  } catch (err) {
    throw new PageError('network', `Cannot reach the server for a token: ${describe(err)}`);
  }
  if (!res.ok) {
    throw new PageError('no_token', 'No access token. Open this page with a token in the link, ' +
      `e.g. #/${publish ? 'live' : 'watch'}/${room}?token=YOUR_TOKEN. ` +
      '(Only a server started with --dev hands out tokens by itself.)');
  }
  const body = await res.json();
  if (!body.token) throw new PageError('no_token', 'The server returned no token.');
  return body.token;
}

// refreshDevToken returns a fresh /dev/token for the identity a client
// joined as: HaloClient's refreshToken in dev mode. Outside dev mode there is
// no /dev/token; the session then ends when its token expires.
export async function refreshDevToken(client, room, publish) {
  const q = new URLSearchParams({ room, identity: client.identity });
  if (publish) q.set('publish', '1');
  const res = await fetch(`/dev/token?${q}`, { cache: 'no-store' });
  if (!res.ok) throw new PageError('no_token', `no fresh token (${res.status})`);
  const body = await res.json();
  if (!body.token) throw new PageError('no_token', 'the server returned no token');
  return body.token;
}

// afterLoad runs f once the page has loaded. A media element that waits for
// its first frame delays the load event (the tab would show a spinner until
// the broadcast starts), so streams are attached only after it.
export function afterLoad(f) {
  if (document.readyState === 'complete') f();
  else window.addEventListener('load', () => f(), { once: true });
}

// backoff before retry n (1 s, 2 s, 4 s, 8 s, 8 s...).
export function backoff(n) { return Math.min(8000, 1000 * 2 ** n); }
