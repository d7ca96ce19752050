// admin.js: the moderator's page (/admin/). It reads the live rooms through
// the server API (docs/api.md) every few seconds, plays a muted tile of each
// room over WHEP, and removes, bans, messages and ends behind a
// confirmation. A token with the admin grant sees every room; one with the
// moderate grant names its room.

import { whep } from '/halo-client.js';

const REFRESH_MS = 3000;
const MAX_TILES = 12; // tiles playing at once: each is a WHEP session

const $ = (id) => document.getElementById(id);
const state = { token: '', me: '', room: '', tiles: new Map(), timer: 0, last: '' };

function setStatus(text, error = false) {
  const s = $('status');
  s.textContent = text;
  s.classList.toggle('error', error);
}

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${state.token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const e = data.error || {};
    const err = new Error(`${e.code || res.status}: ${e.message || res.statusText}`);
    err.code = e.code;
    throw err;
  }
  return data;
}

// rooms reads the rooms to show: every live room (admin), or the token's.
async function rooms() {
  if (state.room) {
    try {
      return [await api('GET', `/api/v1/rooms/${encodeURIComponent(state.room)}`)];
    } catch (err) {
      if (err.code === 'not_found') return [];
      throw err;
    }
  }
  const out = [];
  let cursor = '';
  do {
    const page = await api('GET', `/api/v1/rooms?live=true&limit=100&cursor=${encodeURIComponent(cursor)}`);
    out.push(...page.rooms);
    cursor = page.next_cursor;
  } while (cursor && out.length < 500);
  return out;
}

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c);
  return e;
}

// confirmAction asks before an action; it resolves with {ban, reason} or
// null when cancelled. window.confirmAction can replace it (tests).
function confirmAction(text, withBan) {
  if (window.confirmAction) return Promise.resolve(window.confirmAction(text, withBan));
  const d = $('confirm');
  $('confirm-text').textContent = text;
  $('ban-row').hidden = !withBan;
  $('ban').value = '';
  $('reason').value = '';
  return new Promise((resolve) => {
    d.addEventListener('close', () => {
      resolve(d.returnValue === 'ok' ? { ban: $('ban').value, reason: $('reason').value } : null);
    }, { once: true });
    d.showModal();
  });
}

async function act(text, withBan, call) {
  const answer = await confirmAction(text, withBan);
  if (!answer) return;
  try {
    const res = await call(answer);
    const failed = res.failed && res.failed.length ? `; no answer from ${res.failed.join(', ')}` : '';
    state.last = `${res.action}: ${res.affected} session(s) on ${res.nodes.length} node(s)${failed}`;
    setStatus(state.last);
  } catch (err) {
    setStatus(err.message, true);
  }
  refresh();
}

function query(answer) {
  const q = new URLSearchParams();
  if (answer.ban) q.set('ban', answer.ban);
  if (answer.reason) q.set('reason', answer.reason);
  const s = q.toString();
  return s ? `?${s}` : '';
}

function card(r) {
  const name = r.name;
  const path = `/api/v1/rooms/${encodeURIComponent(name)}`;
  const video = el('video', { muted: true, autoplay: true, playsInline: true });
  const regions = el('div', { class: 'chips' });
  const people = el('div', { class: 'people' });
  const end = el('button', { class: 'danger end', type: 'button', textContent: 'End' });
  end.addEventListener('click', () => act(`End room ${name} for everyone? Without a ban its broadcaster can go live again at once.`, true,
    (a) => api('DELETE', path + query(a))));
  const audience = el('div', { class: 'people audience' });
  const audienceButton = el('button', { class: 'audience-toggle', type: 'button', textContent: 'Audience' });
  const removeButton = (identity, what) => {
    const b = el('button', { class: 'remove', type: 'button', textContent: 'Remove' });
    b.addEventListener('click', () => act(`Remove ${identity} from ${name}? Without a ban they can come back at once.`, true,
      (a) => api('DELETE', `${path}/participants/${encodeURIComponent(identity)}${query(a)}`)));
    return el('div', { class: 'person', 'data-identity': identity }, el('span', { textContent: what }), b);
  };
  // The audience, on demand (a page of 100, by the API's order); pressed
  // again, hidden.
  audienceButton.addEventListener('click', async () => {
    if (audience.childElementCount) {
      audience.replaceChildren();
      return;
    }
    try {
      const list = await api('GET', `${path}/participants?limit=100`);
      audience.replaceChildren(...(list.audience.length ? list.audience.map((p) => (p.identity === state.me
        ? el('div', { class: 'person muted', textContent: `${p.identity} (this page's tile)` })
        : removeButton(p.identity, `${p.identity} (${p.transport || 'websocket'}, ${p.region || p.node})`)))
        : [el('span', { class: 'muted', textContent: 'Nobody watching.' })]));
    } catch (err) {
      setStatus(err.message, true);
    }
  });
  const message = el('button', { class: 'message', type: 'button', textContent: 'Message' });
  message.addEventListener('click', async () => {
    const text = window.prompt(`System message to ${name}`);
    if (text) act(`Send "${text}" to ${name}?`, false, () => api('POST', `${path}/messages`, { text }));
  });
  const note = el('p', { class: 'tile-note muted', hidden: true });
  const c = el('article', { class: 'room', 'data-room': name }, video, note,
    el('div', { class: 'body' }, el('h2', { textContent: name }),
      el('div', { class: 'viewers' }), regions, people, audience),
    el('div', { class: 'actions' }, audienceButton, message, end));
  c.update = (r) => {
    c.querySelector('.viewers').textContent = `${r.viewers} watching on ${r.nodes.length} node(s)`;
    regions.replaceChildren(...Object.entries(r.viewers_by_region).map(([region, n]) =>
      el('span', { class: 'chip', textContent: `${region || 'unknown'}: ${n}` })));
    // Rows are rebuilt only when they change: a button pressed while the
    // list refreshes must still be the one on the screen.
    const rows = r.publishers.map((p) => [p.identity, `${p.identity} (${p.tracks.length} track(s), ${p.node})`]);
    const key = JSON.stringify(rows);
    if (key !== c.rowsKey) {
      c.rowsKey = key;
      people.replaceChildren(...rows.map(([identity, what]) => removeButton(identity, what)));
    }
  };
  c.video = video;
  c.note = note;
  c.update(r);
  return c;
}

// play starts the muted tile of a room over WHEP.
async function play(c, name) {
  try {
    c.session = await whep(`/whep/${encodeURIComponent(name)}`, state.token, {
      onTrack: (e) => {
        if (e.track.kind === 'video') c.video.srcObject = e.streams[0] || new MediaStream([e.track]);
      },
    });
  } catch (err) {
    c.session = null;
    c.dataset.tile = `unavailable: ${err.message}`;
    // Said on the card: a black tile reads as a broadcast with no picture.
    c.note.textContent = err.code === 'forbidden'
      ? 'No picture: this token may not watch the room (a moderate token needs the subscribe grant too).'
      : `No picture: ${err.message}`;
    c.note.hidden = false;
  }
}

async function refresh() {
  clearTimeout(state.timer);
  try {
    const list = await rooms();
    const seen = new Set();
    const grid = $('rooms');
    list.forEach((r, i) => {
      seen.add(r.name);
      let c = state.tiles.get(r.name);
      if (!c) {
        c = card(r);
        state.tiles.set(r.name, c);
        if (state.tiles.size <= MAX_TILES) play(c, r.name);
      } else {
        c.update(r);
      }
      // In the API's order, the most watched first; a card already in its
      // place is not moved (a move would drop a press in progress).
      if (grid.children[i] !== c) grid.insertBefore(c, grid.children[i] || null);
    });
    for (const [name, c] of state.tiles) {
      if (!seen.has(name)) {
        // The server ended the tile's session with the broadcast: close
        // it here, nothing to DELETE.
        if (c.session) c.session.pc.close();
        c.remove();
        state.tiles.delete(name);
      }
    }
    if (!$('status').classList.contains('error')) {
      const now = list.length ? `${list.length} live room(s), ${new Date().toLocaleTimeString()}` : 'No live room now.';
      setStatus(state.last ? `${state.last}. ${now}` : now);
    }
  } catch (err) {
    setStatus(err.message, true);
    if (err.code === 'unauthorized' || err.code === 'forbidden') {
      refused();
      return;
    }
  }
  state.timer = setTimeout(refresh, REFRESH_MS);
}

// claimsOf reads the token's claims: its identity (sub), to tell this
// page's own tiles apart in an audience, and its room. The server checks
// the token; this only reads.
function claimsOf(token) {
  try {
    const b64 = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const c = JSON.parse(atob(b64));
    return { sub: c.sub || '', room: c.room || '' };
  } catch {
    return { sub: '', room: '' };
  }
}

// start opens the page with token on room, or, without one, on the room
// the token names (a moderate token, or an admin's bound to a room, acts
// on that room only), else on every room.
function start(token, room) {
  const claims = claimsOf(token);
  state.token = token;
  state.me = claims.sub;
  state.room = room || claims.room;
  sessionStorage.setItem('halo-admin', JSON.stringify({ token, room: state.room }));
  $('login').hidden = true;
  $('who').textContent = state.room ? `room ${state.room}` : 'every room';
  setStatus('Loading…');
  refresh();
}

// refused shows the form again after the server refused the token (or
// its room): the saved token is forgotten, so a reload does not use it
// again, and what was tried is kept in the form to correct.
function refused() {
  sessionStorage.removeItem('halo-admin');
  $('token').value = state.token;
  $('room').value = state.room;
  $('login').hidden = false;
}

function init() {
  $('login').addEventListener('submit', (e) => {
    e.preventDefault();
    start($('token').value.trim(), $('room').value.trim());
  });
  const hash = new URLSearchParams(window.location.hash.slice(1));
  if (hash.get('token')) {
    history.replaceState(null, '', window.location.pathname); // no token left in the address bar
    start(hash.get('token'), hash.get('room') || '');
    return;
  }
  const saved = JSON.parse(sessionStorage.getItem('halo-admin') || 'null');
  if (saved && saved.token) {
    start(saved.token, saved.room || '');
    return;
  }
  $('login').hidden = false;
}

init();
