// halo-client.js: a small browser client for HaloBuzz Live.
//
// HaloClient speaks the WebSocket protocol of docs/protocol.md (version 1):
// join, publish with trickle ICE, and automatic subscription (it answers
// every `offer` of the server on the subscriber connection). whip() and
// whep() publish and play over WHIP / WHEP instead.
//
// No dependencies, no build step: import it as an ES module.
//
//   import { HaloClient } from '/halo-client.js';
//   const c = new HaloClient({ token });
//   c.addEventListener('track', (e) => video.srcObject = e.detail.streams[0]);
//   c.addEventListener('viewer_count', (e) => show(e.detail.count));
//   await c.connect();
//   await c.join();
//   await c.publish(stream);          // broadcaster
//   ...
//   await c.leave();
//
// Events (CustomEvent, payload in `detail`): joined, participant_joined,
// participant_left (publishers only: a participant is announced when it
// publishes; viewers are only counted), track_published, track_unpublished,
// viewer_count ({count}: at most once a second, and once right after
// joined), chat, reaction, error ({code, message}, for errors that answer no request), track
// ({track, streams, receiver, id, meta}: id is the server's track id and
// meta its Track from joined/track_published), connectionstatechange
// ({target, state}), close ({code, reason, wasClean}: wasClean is true after
// leave()), token_expiring ({exp, seconds_left}), refreshed ({exp, grants}),
// redirect ({url, reason}), moved ({url}: the client now runs on that node),
// layers ({track_id, client_track_id, active}: the simulcast layers viewers
// want; the client pauses the others by itself),
// origin_lost ({node, participant_ids, track_ids}: the node that published
// those tracks is gone; they resume if their broadcaster publishes again
// within the server's grace period, else track_unpublished follows).
//
// Redirects: a node sends a client of another region to that region's node
// before it joins (reason "region"), and a draining node sends its clients
// to another node (reason "draining"). With opts.followRedirects (default
// true) the client follows both by itself: join() retries on the new node,
// and a joined client moves: it joins there, publishes again what it
// published (the server keeps the track ids, so viewers do not notice), and
// only then leaves the old node.
//
// Tokens expire: before `exp` the server sends token_expiring. With
// opts.refreshToken (an async function returning a fresh token for the same
// identity and room) the client answers with `refresh` by itself; without
// it, or when the refresh fails, the server ends the session at exp with
// token_expired.

export const PROTOCOL_VERSION = 1;

// HaloError is a protocol error: `code` is the stable wire code.
export class HaloError extends Error {
  // retryAfter (ms, 0 if none) is how long the server asked the client to
  // wait before trying again (an HTTP 429, 503 or 404 with Retry-After).
  constructor(code, message, retryAfter = 0) {
    super(`${code}: ${message}`);
    this.name = 'HaloError';
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

// retryAfterMs reads the Retry-After of a 429, 503 or 404 (a WHEP room with
// nothing published) answer (seconds; the date form is not used by the
// node) as milliseconds, at most a minute; 0 when there is none.
function retryAfterMs(res) {
  if (res.status !== 429 && res.status !== 503 && res.status !== 404) return 0;
  const v = (res.headers.get('Retry-After') || '').trim();
  if (!/^\d{1,6}$/.test(v)) return 0;
  return Math.min(60, Number(v)) * 1000;
}

// FATAL_CODES end the session on the server side; reconnecting with the same
// token will not help (except server_shutting_down: try again).
export const FATAL_CODES = new Set(['unauthorized', 'room_mismatch', 'room_full', 'rate_limited', 'message_too_large', 'server_shutting_down', 'token_expired']);

// httpURL is path on the node of the WebSocket URL ws (ws: -> http:).
function httpURL(ws, path) {
  const u = new URL(ws, window.location.href);
  u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
  u.pathname = path;
  u.search = '';
  return u.href;
}

// parseLinks parses Link header values (RFC 8288) into
// [{url, params: {rel, username, ...}}].
export function parseLinks(value) {
  const out = [];
  const re = /<([^>]*)>((?:\s*;\s*[^=;,\s]+(?:\s*=\s*(?:"(?:[^"\\]|\\.)*"|[^;,]*))?)*)/g;
  let m;
  while ((m = re.exec(value || ''))) {
    const params = {};
    const pre = /;\s*([^=;,\s]+)(?:\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;,]*)))?/g;
    let p;
    while ((p = pre.exec(m[2]))) {
      params[p[1].toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] || '').trim();
    }
    out.push({ url: m[1], params });
  }
  return out;
}

// iceServersFor asks a WHIP/WHEP endpoint for its STUN/TURN servers, as RFC
// 9725 section 4.6 has it: OPTIONS with the token, Link headers of rel
// "ice-server" (TURN ones with username and credential). Resolves with
// RTCIceServer entries, [] when the node offers none or cannot be asked.
// turnOnly leaves out the ones without credentials.
export async function iceServersFor(endpoint, token, turnOnly = false) {
  let res;
  try {
    res = await fetch(endpoint, { method: 'OPTIONS', headers: token ? { Authorization: `Bearer ${token}` } : {} });
  } catch {
    return [];
  }
  const servers = [];
  for (const l of parseLinks(res.headers.get('Link'))) {
    if ((l.params.rel || '').toLowerCase() !== 'ice-server') continue;
    if (l.params.username !== undefined) {
      servers.push({ urls: l.url, username: l.params.username, credential: l.params.credential || '' });
    } else if (!turnOnly && !/^turns?:/.test(l.url)) {
      servers.push({ urls: l.url });
    }
  }
  return servers;
}

// defaultWebSocketURL is /ws on the page's own origin.
export function defaultWebSocketURL(loc = window.location) {
  return `${loc.protocol === 'https:' ? 'wss:' : 'ws:'}//${loc.host}/ws`;
}

// SIMULCAST_ENCODINGS are the three layers a simulcast publisher sends: a
// quarter, half and the full resolution (320x180, 640x360 and 1280x720 for
// a 720p camera). The server sends each viewer the best one its cap allows
// and the publisher actually sends (browsers drop upper layers under
// congestion).
export const SIMULCAST_ENCODINGS = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
  { rid: 'f', maxBitrate: 1500000 },
];

// sendOptions are the addTransceiver options for track: its video sent in
// simulcast layers when simulcast is set.
function sendOptions(track, stream, simulcast) {
  const o = { direction: 'sendonly', streams: [stream] };
  if (simulcast && track.kind === 'video') o.sendEncodings = SIMULCAST_ENCODINGS.map((e) => ({ ...e }));
  return o;
}

// preferCodec puts mimeType (e.g. 'video/H264') first among the codecs
// transceiver offers (setCodecPreferences), the others after it, so the
// server receives that codec where both ends have it. It returns false
// where the browser cannot send it.
export function preferCodec(transceiver, mimeType) {
  const kind = transceiver.sender.track ? transceiver.sender.track.kind : 'video';
  const caps = window.RTCRtpReceiver && RTCRtpReceiver.getCapabilities && RTCRtpReceiver.getCapabilities(kind);
  const sendable = window.RTCRtpSender && RTCRtpSender.getCapabilities && RTCRtpSender.getCapabilities(kind);
  if (!caps || !sendable || !transceiver.setCodecPreferences) return false;
  const want = mimeType.toLowerCase();
  if (!sendable.codecs.some((c) => c.mimeType.toLowerCase() === want)) return false;
  const first = caps.codecs.filter((c) => c.mimeType.toLowerCase() === want);
  // packetization-mode=1 first: what WHIP servers and HLS muxers expect.
  first.sort((a, b) => Number(/packetization-mode=1/.test(b.sdpFmtpLine || '')) - Number(/packetization-mode=1/.test(a.sdpFmtpLine || '')));
  if (!first.length) return false;
  transceiver.setCodecPreferences([...first, ...caps.codecs.filter((c) => c.mimeType.toLowerCase() !== want)]);
  return true;
}

export class HaloClient extends EventTarget {
  // opts: {token, room?, name?, url? (default /ws of this origin),
  //        autoSubscribe? (default true), rtcConfig?, requestTimeoutMs? (10000),
  //        holdResolutionMs? (10000, see holdResolution),
  //        refreshToken? (async (client) => fresh token, on token_expiring),
  //        simulcast? (send video in three layers, SIMULCAST_ENCODINGS),
  //        videoCodec? (a MIME type to send video in first, preferCodec),
  //        followRedirects? (default true)}
  constructor(opts = {}) {
    super();
    this.opts = { url: defaultWebSocketURL(), autoSubscribe: true, requestTimeoutMs: 10000, rtcConfig: {}, ...opts };
    this.ws = null;
    this.nextId = 1;
    this.pending = new Map(); // id -> {resolve, reject, timer}
    this.participantId = '';
    this.name = ''; // the display name others see (the token's, when it has one)
    this.participants = new Map(); // id -> Participant: the room's publishers, not its audience
    this.viewerCount = 0;
    this.tracks = new Map(); // track id -> Track (metadata of the server)
    this.publisher = null; // RTCPeerConnection we offer on
    this.subscriber = null; // RTCPeerConnection the server offers on
    this.pubCandidates = []; // remote candidates before the publisher has its answer
    this.subCandidates = []; // remote candidates before the subscriber has an offer
    this.iceReady = Promise.resolve(); // the ICE servers are in opts.rtcConfig
    this.pubLocal = null; // local publisher candidates held until publish is sent
    this.offers = Promise.resolve(); // subscriber offers are handled one at a time
    this.closed = false;
    this.published = []; // [{stream, trackMeta}] published, to publish again after a move
    this.redirectTo = ''; // a region redirect received before the join
    this.moving = null; // the move to another node under way (a Promise)
  }

  // connect opens the WebSocket; it resolves when it is open.
  connect() {
    return new Promise((resolve, reject) => {
      let opened = false;
      const ws = new WebSocket(this.opts.url);
      this.ws = ws;
      ws.onopen = () => { opened = true; resolve(); };
      ws.onmessage = (e) => this._onMessage(e.data);
      ws.onerror = () => { if (!opened) reject(new HaloError('network', `cannot open ${this.opts.url}`)); };
      ws.onclose = (e) => {
        if (!opened) reject(new HaloError('network', `cannot open ${this.opts.url} (${e.code})`));
        this._failPending(new HaloError('closed', `connection closed (${e.code}${e.reason ? ' ' + e.reason : ''})`));
        this._closePeers();
        const wasClean = this.closed;
        this.closed = true;
        this._emit('close', { code: e.code, reason: e.reason, wasClean });
      };
    });
  }

  // join enters the room; it resolves with the `joined` data.
  async join() {
    let d;
    try {
      d = await this._joinRequest();
    } catch (err) {
      const url = this.redirectTo;
      if (!url || this.participantId || this.opts.followRedirects === false) throw err;
      // Sent to the node of our region: join there.
      this.redirectTo = '';
      this.opts.url = url;
      this.closed = false;
      await this.connect();
      this._emit('moved', { url });
      return this.join();
    }
    return d;
  }

  async _iceServers(d) {
    if (this.opts.rtcConfig.iceServers) return;
    const servers = [];
    if (Array.isArray(d.ice_servers) && d.ice_servers.length) servers.push({ urls: d.ice_servers });
    if (Array.isArray(d.turn_servers)) servers.push(...d.turn_servers);
    else servers.push(...await iceServersFor(httpURL(this.opts.url, `/whep/${encodeURIComponent(d.room)}`), this.opts.token, true));
    if (servers.length) this.opts.rtcConfig = { ...this.opts.rtcConfig, iceServers: servers };
  }

  async _joinRequest() {
    const d = await this.request('join', {
      token: this.opts.token,
      room: this.opts.room || undefined,
      name: this.opts.name || undefined,
      auto_subscribe: this.opts.autoSubscribe,
      hidden: this.opts.hidden || undefined,
    }, 'joined');
    this.participantId = d.participant_id;
    this.identity = d.identity;
    this.name = d.name || '';
    // The node's STUN/TURN servers, unless the app brought its own: its
    // sfu.ice_servers, and its TURN servers with credentials for this
    // participant (turn_servers, else the WHEP endpoint's Link headers).
    // The server's offer to the subscriber may come before they are known:
    // _onOffer waits for iceReady.
    this.iceReady = this._iceServers(d);
    await this.iceReady;
    for (const p of d.participants || []) this.participants.set(p.id, p);
    for (const t of d.tracks || []) this.tracks.set(t.id, t);
    this._emit('joined', d);
    if (typeof d.viewer_count === 'number') {
      this.viewerCount = d.viewer_count;
      this._emit('viewer_count', { count: d.viewer_count });
    }
    return d;
  }

  // publish sends the tracks of stream (all of them, or opts.tracks) on the
  // publisher connection. trackMeta is an optional array of
  // {track_id, source, name}; tracks without an entry get camera/microphone.
  // Calling it again adds tracks (a renegotiation). Resolves once the server
  // answered; media flows when connectionstatechange says "connected".
  async publish(stream, trackMeta = [], again = false) {
    if (!again) this.published.push({ stream, trackMeta });
    const pc = this._publisherPC();
    const tracks = stream.getTracks();
    for (const track of tracks) {
      const tr = pc.addTransceiver(track, sendOptions(track, stream, this.opts.simulcast));
      if (track.kind === 'video' && this.opts.videoCodec) preferCodec(tr, this.opts.videoCodec);
      if (track.kind === 'video' && !this.opts.simulcast) holdResolution(tr.sender, this.opts.holdResolutionMs);
    }
    const meta = tracks.map((t) => {
      const m = trackMeta.find((x) => x.track_id === t.id) || {};
      return {
        track_id: t.id,
        source: m.source || (t.kind === 'video' ? 'camera' : 'microphone'),
        name: m.name || t.label || '',
      };
    });
    await this._negotiatePublisher(meta);
    return pc;
  }

  // replaceTrack swaps what a sender sends (another camera) without
  // renegotiation.
  async replaceTrack(oldTrack, newTrack) {
    const sender = this.publisher && this.publisher.getSenders().find((s) => s.track === oldTrack);
    if (!sender) throw new Error('replaceTrack: track is not published');
    await sender.replaceTrack(newTrack);
  }

  // setLayer caps the quality of a simulcast track: max is "low", "medium"
  // or "high" (the best the viewer's link and the publisher allow). It
  // resolves with {track_id, max, simulcast}.
  setLayer(trackId, max) { return this.request('set_layer', { track_id: trackId, max }, 'layer_set'); }

  // subscribe / unsubscribe pick tracks explicitly (with autoSubscribe false).
  subscribe(trackIds = []) { return this.request('subscribe', { track_ids: trackIds }, 'subscribed'); }
  unsubscribe(trackIds) { return this.request('unsubscribe', { track_ids: trackIds }, 'unsubscribed'); }

  // chat sends a room message to every participant; react an emoji. Both
  // share the room's rate: over it an `error` event with code
  // room_rate_limited says the message was not sent. They return false
  // when the socket is not open (nothing was sent).
  chat(text) { return this._send('chat', { text }); }
  react(emoji) { return this._send('reaction', { emoji }); }

  // leave releases everything on the server and closes the socket and peers.
  async leave() {
    if (this.closed) return;
    this.closed = true;
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      // Sending stops first: the server lets the packets already sent
      // reach the viewers (it waits for the broadcast to go quiet) before
      // it closes, so the audience hears the last word.
      if (this.publisher) {
        await Promise.all(this.publisher.getSenders().map((s) => s.replaceTrack(null).catch(() => {})));
      }
      this._send('leave', {});
      // The server closes the socket after releasing the participant; do not
      // wait for ever.
      await new Promise((resolve) => {
        const t = setTimeout(resolve, 1000);
        this.ws.addEventListener('close', () => { clearTimeout(t); resolve(); }, { once: true });
      });
    }
    if (this.ws) this.ws.close();
    this._closePeers();
  }

  // request sends a message with an id and resolves with the reply's data.
  request(type, data, replyType) {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new HaloError('timeout', `no reply to ${type}`));
      }, this.opts.requestTimeoutMs);
      this.pending.set(id, { resolve, reject, timer, replyType });
      if (!this._send(type, data, id)) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new HaloError('closed', 'not connected'));
      }
    });
  }

  _send(type, data, id) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    const env = { v: PROTOCOL_VERSION, type, data };
    if (id) env.id = id;
    this.ws.send(JSON.stringify(env));
    return true;
  }

  _emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  _onMessage(raw) {
    let env;
    try {
      env = JSON.parse(raw);
    } catch {
      return;
    }
    const data = env.data || {};
    if (env.id && this.pending.has(env.id)) {
      const p = this.pending.get(env.id);
      this.pending.delete(env.id);
      clearTimeout(p.timer);
      if (env.type === 'error') p.reject(new HaloError(data.code, data.message));
      else p.resolve(data);
      return;
    }
    switch (env.type) {
      case 'offer':
        this.offers = this.offers.then(() => this._onOffer(data.sdp)).catch((err) => {
          this._emit('error', { code: 'client', message: `answering the server's offer: ${err.message || err}` });
        });
        return;
      case 'trickle':
        this._onRemoteCandidate(data.target, data.candidate);
        return;
      case 'participant_joined':
        if (data.participant) this.participants.set(data.participant.id, data.participant);
        break;
      case 'participant_left':
        this.participants.delete(data.participant_id);
        break;
      case 'track_published':
        if (data.track) this.tracks.set(data.track.id, data.track);
        break;
      case 'track_unpublished':
        this.tracks.delete(data.track_id);
        break;
      case 'error':
        if (data.code === 'media_failed') this._mediaFailed(data.target);
        break;
      case 'token_expiring':
        this._refreshToken();
        break;
      case 'viewer_count':
        if (typeof data.count === 'number') this.viewerCount = data.count;
        break;
      case 'chat':
      case 'reaction':
      // Moderation (docs/protocol.md): the app shows them; removed comes
      // before the server closes the socket.
      case 'removed':
      case 'system_message':
      case 'permissions_changed':
      case 'track_muted':
        break;
      case 'layers':
        this._sendLayers(data).catch((err) => {
          this._emit('error', { code: 'client', message: `pausing simulcast layers: ${err.message || err}` });
        });
        break;
      case 'origin_lost':
        for (const id of data.participant_ids || []) this.participants.delete(id);
        break;
      case 'redirect':
        if (this.opts.followRedirects !== false && data.url) {
          if (this.participantId) this._move(data.url).catch((err) => {
            this._emit('error', { code: err.code || 'client', message: `moving to ${data.url}: ${err.message || err}` });
          });
          else {
            // The node closes this socket now: the pending join fails and
            // join() goes on at url, without a close event for the app.
            this.redirectTo = data.url;
            const ws = this.ws;
            ws.onclose = () => this._failPending(new HaloError('redirect', `sent to ${data.url}`));
          }
        }
        break;
      default:
        return; // forward compatible: ignore unknown events
    }
    this._emit(env.type, data);
  }

  // _sendLayers obeys the server's "layers": the encodings of the simulcast
  // track it names are sent only when their RID is in active (nobody
  // watches the others; the server says again when someone does).
  async _sendLayers(data) {
    if (!this.publisher || !Array.isArray(data.active)) return;
    for (const sender of this.publisher.getSenders()) {
      if (!sender.track || sender.track.id !== data.client_track_id) continue;
      const p = sender.getParameters();
      if (!p.encodings || p.encodings.length < 2) return;
      let changed = false;
      for (const enc of p.encodings) {
        const on = data.active.includes(enc.rid);
        if (enc.active !== on) {
          enc.active = on;
          changed = true;
        }
      }
      if (changed) await sender.setParameters(p);
    }
  }

  // _move runs the session on the node at url: join there (the server
  // offers the subscriber connection again), publish again what was
  // published (the new node takes over the same track ids), then leave the
  // old node. Until the new node answered, the old connections keep
  // playing and sending.
  _move(url) {
    if (this.moving || this.closed) return this.moving || Promise.resolve();
    const old = { ws: this.ws, publisher: this.publisher, subscriber: this.subscriber, pending: this.pending };
    this.moving = (async () => {
      old.ws.onmessage = null;
      old.ws.onclose = null;
      this.ws = null;
      this.publisher = null;
      this.subscriber = null;
      this.pending = new Map();
      this.pubCandidates = [];
      this.subCandidates = [];
      this.pubLocal = null;
      this.participantId = '';
      this.participants.clear();
      this.tracks.clear();
      this.opts.url = url;
      try {
        await this.connect();
        await this._joinRequest();
        for (const p of this.published) await this.publish(p.stream, p.trackMeta, true);
        // The new node takes over the old track ids when each track's
        // first packets reach it, which must happen before the old node
        // unpublishes them on our leave: wait until every sender has sent
        // media, and a moment for the node to name the tracks (at most 3 s).
        await this._mediaFlowing(3000);
      } finally {
        for (const p of old.pending.values()) {
          clearTimeout(p.timer);
          p.reject(new HaloError('closed', 'moved to another node'));
        }
        try { old.ws.send(JSON.stringify({ v: PROTOCOL_VERSION, type: 'leave', data: {} })); } catch { /* gone */ }
        old.ws.close();
        if (old.publisher) old.publisher.close();
        if (old.subscriber) old.subscriber.close();
        this.moving = null;
      }
      this._emit('moved', { url });
    })();
    return this.moving;
  }

  // _mediaFlowing resolves once every sender of the publisher connection
  // has sent packets, plus 500 ms, or after timeoutMs.
  async _mediaFlowing(timeoutMs) {
    const pc = this.publisher;
    if (!pc) return;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const senders = pc.getSenders().filter((s) => s.track);
      let flowing = 0;
      for (const s of senders) {
        try {
          const stats = await s.getStats();
          let sent = false;
          stats.forEach((r) => { if (r.type === 'outbound-rtp' && r.packetsSent > 0) sent = true; });
          if (sent) flowing++;
        } catch { /* not yet */ }
      }
      if (senders.length > 0 && flowing >= senders.length) {
        await new Promise((r) => setTimeout(r, Math.min(500, Math.max(0, deadline - Date.now()))));
        return;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  // _refreshToken answers token_expiring with a fresh token from
  // opts.refreshToken. A failure is reported as an error event; the server
  // then ends the session at the old token's exp.
  async _refreshToken() {
    if (!this.opts.refreshToken || this.closed) return;
    try {
      const token = await this.opts.refreshToken(this);
      const d = await this.request('refresh', { token }, 'refreshed');
      this.opts.token = token;
      this._emit('refreshed', d);
    } catch (err) {
      this._emit('error', { code: err.code || 'client', message: `refreshing the token: ${err.message || err}` });
    }
  }

  // _mediaFailed drops a connection the server released. A lost subscriber
  // connection is replaced at once when the client watches everything; a
  // lost publisher connection is the app's to restart (it owns the media).
  _mediaFailed(target) {
    if (target === 'subscriber' && this.subscriber) {
      this.subscriber.close();
      this.subscriber = null;
      this.subCandidates = [];
      if (this.opts.autoSubscribe !== false) {
        this.request('subscribe', {}, 'subscribed').catch(() => {});
      }
    } else if (target === 'publisher' && this.publisher) {
      this.publisher.close();
      this.publisher = null;
    }
  }

  _newPC(target) {
    const pc = new RTCPeerConnection(this.opts.rtcConfig);
    pc.addEventListener('icecandidate', (e) => {
      // Some browsers signal the end of gathering with an empty candidate.
      const c = e.candidate && e.candidate.candidate ? e.candidate.toJSON() : null;
      if (target === 'publisher' && this.pubLocal) {
        this.pubLocal.push(c);
        return;
      }
      this._send('trickle', { target, candidate: c });
    });
    pc.addEventListener('connectionstatechange', () => {
      this._emit('connectionstatechange', { target, state: pc.connectionState });
    });
    return pc;
  }

  _publisherPC() {
    if (!this.publisher) this.publisher = this._newPC('publisher');
    return this.publisher;
  }

  async _negotiatePublisher(meta) {
    const pc = this.publisher;
    this.pubLocal = []; // hold our candidates until the server has the offer
    let sent = false;
    try {
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      const reply = this.request('publish', { sdp: pc.localDescription.sdp, tracks: meta }, 'answer');
      sent = true;
      this._flushLocalPublisherCandidates();
      const answer = await reply;
      await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
      for (const c of this.pubCandidates.splice(0)) await pc.addIceCandidate(c).catch(() => {});
    } finally {
      if (!sent) this.pubLocal = null;
    }
  }

  _flushLocalPublisherCandidates() {
    const held = this.pubLocal || [];
    this.pubLocal = null;
    for (const c of held) this._send('trickle', { target: 'publisher', candidate: c });
  }

  async _onOffer(sdp) {
    if (this.closed) return;
    if (!this.subscriber) {
      await this.iceReady; // the ICE servers, asked for at the join
      if (this.closed) return;
    }
    if (!this.subscriber) {
      this.subscriber = this._newPC('subscriber');
      this.subscriber.addEventListener('track', (e) => {
        // Chromium takes MediaStreamTrack.id from the a=msid line, where the
        // server puts its track id; the stream id is the publisher's
        // participant id (one synchronised stream per publisher).
        const stream = e.streams[0];
        const id = this.tracks.has(e.track.id) || !stream ? e.track.id : stream.id;
        this._emit('track', { track: e.track, streams: e.streams, receiver: e.receiver, meta: this.tracks.get(id) || null, id });
      });
    }
    const pc = this.subscriber;
    await pc.setRemoteDescription({ type: 'offer', sdp });
    for (const c of this.subCandidates.splice(0)) await pc.addIceCandidate(c).catch(() => {});
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    this._send('answer', { sdp: pc.localDescription.sdp });
  }

  _onRemoteCandidate(target, candidate) {
    if (!candidate || !candidate.candidate) return; // end of candidates
    const pc = target === 'publisher' ? this.publisher : this.subscriber;
    if (!pc || !pc.remoteDescription) {
      (target === 'publisher' ? this.pubCandidates : this.subCandidates).push(candidate);
      return;
    }
    pc.addIceCandidate(candidate).catch((err) => {
      this._emit('error', { code: 'client', message: `adding a ${target} candidate: ${err.message || err}` });
    });
  }

  _failPending(err) {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(err);
      this.pending.delete(id);
    }
  }

  _closePeers() {
    if (this.publisher) this.publisher.close();
    if (this.subscriber) this.subscriber.close();
    this.publisher = this.subscriber = null;
  }
}

// holdResolution keeps a video sender at its full capture size for the first
// ms milliseconds, then lets the browser trade size for frame rate again
// ("balanced"). Chrome starts every connection at a bandwidth estimate of
// 300 kbps and, when the first frame is encoded before the estimate rises,
// sends a quarter of the picture for many seconds; viewers of a new
// broadcast would see that first. The call does nothing where the browser
// does not support degradationPreference.
export async function holdResolution(sender, ms = 10000) {
  const set = async (pref) => {
    try {
      const p = sender.getParameters();
      p.degradationPreference = pref;
      await sender.setParameters(p);
    } catch {
      // not supported, or the sender is gone
    }
  };
  await set('maintain-resolution');
  if (ms > 0) setTimeout(() => { if (sender.track) set('balanced'); }, ms);
}

// waitForGathering resolves when pc has gathered all its candidates, or after
// maxMs, whichever comes first.
export function waitForGathering(pc, maxMs = 1000) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    const check = () => { if (pc.iceGatheringState === 'complete') done(); };
    const timer = setTimeout(done, maxMs);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

// HTTPSession is a WHIP or WHEP session: pc, the resource URL (Location) and
// stop(), which DELETEs the resource, then closes pc.
class HTTPSession {
  constructor(pc, location, token) {
    this.pc = pc;
    this.location = location;
    this.token = token;
  }

  async stop() {
    const pc = this.pc;
    this.pc = null;
    const url = this.location;
    this.location = '';
    // DELETE first: a connection closed before it reads to the server as a
    // broadcaster who dropped out, whose tracks wait 10 s for it to come
    // back, so the end would reach every viewer 10 s late (and the DELETE
    // then finds no session). At most 2 s, then the connection closes anyway.
    if (url) {
      // A WHIP session stops sending first: the server lets what was sent
      // reach the viewers before it ends the session, and waits for the
      // broadcast to go quiet (at most half a second) to know it has.
      if (pc) {
        await Promise.all(pc.getSenders().map((s) => (s.track ? s.replaceTrack(null).catch(() => {}) : null)));
      }
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), 2000);
      try {
        // keepalive lets the DELETE finish while the page unloads.
        await fetch(url, { method: 'DELETE', headers: { Authorization: `Bearer ${this.token}` }, keepalive: true, signal: ac.signal });
      } catch {
        // The server ends the session on its own when ICE times out.
      } finally {
        clearTimeout(timer);
      }
    }
    if (pc) pc.close();
  }
}

// exchangeSDP POSTs pc's offer (after ICE gathering, at most 1 s) to endpoint
// and applies the answer: the non-trickle flavour of WHIP/WHEP.
async function exchangeSDP(pc, endpoint, token, hooks = {}) {
  await pc.setLocalDescription(await pc.createOffer());
  await waitForGathering(pc, 1000);
  if (hooks.beforePost) hooks.beforePost();
  const post = async (url) => {
    try {
      return await fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${token}` },
        body: pc.localDescription.sdp,
      });
    } catch (err) {
      throw new HaloError('network', `POST ${url}: ${err.message || err}`);
    }
  };
  // fetch follows a 307 (a draining node, or one of another region,
  // sends the POST to a live node). To another origin it drops the
  // Authorization header, so the node there answers 401: the offer goes
  // again, with the token, to the URL the redirect led to.
  let res = await post(endpoint);
  if (res.redirected && res.status === 401) res = await post(res.url);
  const body = await res.text();
  if (res.status !== 201) {
    // Error bodies are "code: message" like every HTTP error of the node.
    const m = /^([a-z_]+):\s*(.*)$/s.exec(body.trim());
    throw new HaloError(m ? m[1] : `http_${res.status}`, m ? m[2] : `${res.status} ${res.statusText} ${body.trim()}`, retryAfterMs(res));
  }
  const loc = res.headers.get('Location');
  await pc.setRemoteDescription({ type: 'answer', sdp: body });
  // The session's URL is relative to the node that answered.
  return loc ? new URL(loc, res.url || new URL(endpoint, window.location.href)).href : '';
}

// whip publishes stream over WHIP (RFC 9725) to endpoint (e.g. /whip/room).
// opts: {rtcConfig?, holdResolutionMs?, beforePost?, simulcast?, videoCodec?}; without
// rtcConfig, the endpoint's ICE servers (iceServersFor). Resolves with {pc,
// location, stop()}.
export async function whip(endpoint, token, stream, opts = {}) {
  const pc = new RTCPeerConnection(opts.rtcConfig || { iceServers: await iceServersFor(endpoint, token) });
  try {
    for (const track of stream.getTracks()) {
      const tr = pc.addTransceiver(track, sendOptions(track, stream, opts.simulcast));
      if (track.kind === 'video' && opts.videoCodec) preferCodec(tr, opts.videoCodec);
      if (track.kind === 'video' && !opts.simulcast) holdResolution(tr.sender, opts.holdResolutionMs);
    }
    const location = await exchangeSDP(pc, endpoint, token, opts);
    return new HTTPSession(pc, location, token);
  } catch (err) {
    pc.close();
    throw err;
  }
}

// whep plays a room over WHEP from endpoint (e.g. /whep/room). opts.onTrack
// receives each RTCTrackEvent; opts.beforePost runs just before the POST;
// opts.rtcConfig as for whip. Resolves with {pc, location, stop()}.
export async function whep(endpoint, token, opts = {}) {
  const pc = new RTCPeerConnection(opts.rtcConfig || { iceServers: await iceServersFor(endpoint, token) });
  try {
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    if (opts.onTrack) pc.addEventListener('track', opts.onTrack);
    const location = await exchangeSDP(pc, endpoint, token, opts);
    return new HTTPSession(pc, location, token);
  } catch (err) {
    pc.close();
    throw err;
  }
}
