// app.js: the HaloBuzz Live page. Three hash routes:
//   #/                 pick a room
//   #/live/<room>      broadcast camera + microphone (?via=whip for WHIP)
//   #/watch/<room>     watch (?via=whep for WHEP)
// Either takes ?token=<JWT>; without one the page asks the node's dev-mode
// /dev/token endpoint.
//
// For tests and tooling: window.haloState and window.haloViewerCount on the
// live page, window.haloStats() on the watch page.

import { $, ROOM_RE, parseHash } from './page.js';
import { liveView } from './live.js';
import { watchView } from './watch.js';

// ---------------------------------------------------------------- home

function homeView(params) {
  const input = $('room-input');
  if (!input.value) {
    let last = '';
    try {
      last = localStorage.getItem('halo.room') || '';
    } catch {
      // storage may be disabled
    }
    input.value = last || 'demo';
  }
  $('use-http').checked = params.get('via') === 'whip' || params.get('via') === 'whep';
  $('home-error').hidden = true;
  document.title = 'HaloBuzz Live';
  return { stop: async () => {} };
}

$('home-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = $('room-input');
  const room = input.value.trim();
  const err = $('home-error');
  if (!ROOM_RE.test(room)) {
    err.textContent = 'Room names are 1 to 64 letters, digits, _ . or -.';
    err.hidden = false;
    input.setAttribute('aria-invalid', 'true');
    input.focus();
    return;
  }
  input.removeAttribute('aria-invalid');
  err.hidden = true;
  try {
    localStorage.setItem('halo.room', room);
  } catch {
    // storage may be disabled; the room name is only a convenience
  }
  const live = e.submitter && e.submitter.value === 'live';
  const http = $('use-http').checked;
  const via = http ? (live ? '?via=whip' : '?via=whep') : '';
  location.hash = `#/${live ? 'live' : 'watch'}/${encodeURIComponent(room)}${via}`;
});

// ---------------------------------------------------------------- router

let current = null;
let routing = Promise.resolve();

async function route() {
  if (current) {
    const c = current;
    current = null;
    await c.stop().catch(() => {});
  }
  const { view, room, params } = parseHash();
  let shown = view;
  if ((view === 'live' || view === 'watch') && !ROOM_RE.test(room)) shown = 'home';
  if (!['home', 'live', 'watch'].includes(shown)) shown = 'home';
  for (const v of ['home', 'live', 'watch']) $(`view-${v}`).hidden = v !== shown;
  if (shown === 'live') current = liveView(room, params);
  else if (shown === 'watch') current = watchView(room, params);
  else {
    current = homeView(params);
    if (view !== 'home') {
      $('home-error').textContent = room ? `"${room}" is not a valid room name.` : 'Unknown page.';
      $('home-error').hidden = false;
    }
  }
}

// navigate runs route after the previous one has finished tearing down.
function navigate() {
  routing = routing.then(route).catch((err) => console.error('route', err));
}

window.addEventListener('hashchange', () => {
  navigate();
  $('main').focus({ preventScroll: true });
});
// Leaving the page ends the session (leave, or DELETE for WHIP/WHEP); coming
// back from the back-forward cache starts the view again.
window.addEventListener('pagehide', () => {
  if (current) current.stop();
  current = null;
});
window.addEventListener('pageshow', (e) => {
  if (e.persisted) navigate();
});
navigate();
