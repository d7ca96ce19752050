// chat.js: the room beside the picture: its audience count, its chat and
// its reactions, on the watch page and the live page alike. It follows a
// HaloClient's viewer_count, chat and reaction events (docs/protocol.md)
// and sends with client.chat() and client.react(). Messages are written as
// text, never as markup.

import { $ } from './page.js';

// REACTIONS are the emoji the page offers.
export const REACTIONS = ['👏', '❤️', '😂', '🔥'];

// KEEP is how many messages the log keeps.
const KEEP = 100;

// chatPanel wires the panel whose element ids start with prefix (watch- or
// live-): {prefix}-viewers, {prefix}-chat-log, {prefix}-chat-form,
// {prefix}-chat-text, {prefix}-reactions, {prefix}-chat-error ({prefix}-viewers
// is optional). signal ends
// its listeners. attach(client) follows a client (null: none, the panel is
// idle). window.haloChat() returns what the log shows, for tests.
export function chatPanel(prefix, signal) {
  const log = $(`${prefix}-chat-log`);
  const form = $(`${prefix}-chat-form`);
  const text = $(`${prefix}-chat-text`);
  const errorEl = $(`${prefix}-chat-error`);
  const viewers = $(`${prefix}-viewers`);
  const reactions = $(`${prefix}-reactions`);
  const shown = []; // {kind, name, identity, text}
  let client = null;
  let off = null; // ends the current client's listeners

  log.replaceChildren();
  errorEl.hidden = true;
  reactions.replaceChildren();
  for (const emoji of REACTIONS) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'reaction';
    b.textContent = emoji;
    b.setAttribute('aria-label', `React ${emoji}`);
    b.addEventListener('click', () => send(() => client.react(emoji)), { signal });
    reactions.append(b);
  }
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const t = text.value.trim();
    if (!t) return;
    if (send(() => client.chat(t))) text.value = '';
  }, { signal });

  function send(fn) {
    if (!client) {
      showError('Not connected to the room yet.');
      return false;
    }
    if (!fn()) {
      showError('Not connected to the room now.');
      return false;
    }
    errorEl.hidden = true;
    return true;
  }

  function showError(msg) {
    errorEl.textContent = msg;
    errorEl.hidden = false;
  }

  function add(kind, d) {
    const entry = { kind, name: d.name || d.identity || 'someone', identity: d.identity || '', text: kind === 'chat' ? d.text : d.emoji };
    shown.push(entry);
    if (shown.length > KEEP) shown.shift();
    const li = document.createElement('li');
    li.className = kind;
    const who = document.createElement('b');
    who.textContent = entry.name;
    li.append(who, document.createTextNode(kind === 'chat' ? `: ${entry.text}` : ` ${entry.text}`));
    log.append(li);
    while (log.children.length > KEEP) log.firstElementChild.remove();
    log.scrollTop = log.scrollHeight;
  }

  function setViewers(n) {
    if (viewers) viewers.textContent = typeof n === 'number' ? String(n) : '-';
  }

  function attach(c) {
    if (off) off();
    off = null;
    client = c;
    if (!c) return;
    const ac = new AbortController();
    const opts = { signal: ac.signal };
    c.addEventListener('viewer_count', (e) => setViewers(e.detail.count), opts);
    c.addEventListener('chat', (e) => add('chat', e.detail), opts);
    c.addEventListener('reaction', (e) => add('reaction', e.detail), opts);
    c.addEventListener('error', (e) => {
      if (e.detail.code === 'room_rate_limited' || e.detail.code === 'bad_request' || e.detail.code === 'forbidden') showError(`${e.detail.code}: ${e.detail.message}`);
    }, opts);
    signal.addEventListener('abort', () => ac.abort(), { once: true });
    off = () => ac.abort();
  }

  setViewers(null);
  window.haloChat = () => shown.slice();
  return { attach, setViewers };
}
