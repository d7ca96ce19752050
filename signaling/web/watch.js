// watch.js: the player view, #/watch/<room>. Plays the room over the
// WebSocket protocol (or WHEP with ?via=whep, or LL-HLS with ?via=hls),
// muted until the viewer unmutes, with a stats overlay and
// window.haloStats() for tests. Where WebRTC is unavailable (no
// RTCPeerConnection, or its media path fails for good) it falls back to
// LL-HLS and says so. Without a picture to show (before the broadcast,
// after it ended) a placeholder stands in for the player, never its frozen
// last frame.

import { HaloClient, whep } from './halo-client.js';
import { chatPanel } from './chat.js';
import { $, setStatus, describe, PageError, getToken, afterLoad, backoff, NO_RETRY, refreshDevToken } from './page.js';
import { hlsURL, playHLS, playlistError } from './hls-play.js';

// VIA_NAMES name each way of watching on the page.
const VIA_NAMES = { ws: 'WebSocket', whep: 'WHEP', hls: 'LL-HLS' };
// NO_FALLBACK are the WebRTC errors after which the page does not fall back
// to HLS: the server refused this viewer, which HLS must not get around, or
// the page has no token, which the viewer must be told about.
const NO_FALLBACK = new Set(['unauthorized', 'room_mismatch', 'forbidden', 'no_token']);

export function watchView(room, params) {
  let via = ['whep', 'hls'].includes(params.get('via')) ? params.get('via') : 'ws';
  // Why the page plays HLS though WebRTC was asked for ('' when it was not).
  let fallback = '';
  if (via !== 'hls' && typeof RTCPeerConnection === 'undefined') {
    via = 'hls';
    fallback = 'This browser has no WebRTC';
  }
  const player = $('player');
  const status = $('watch-status');
  const picker = $('camera-pick');
  // The quality cap (simulcast broadcasts): ?layer=low|medium|high presets it.
  const layerPick = $('layer-pick');
  layerPick.value = ['low', 'medium', 'high'].includes(params.get('layer')) ? params.get('layer') : 'high';
  const ac = new AbortController();
  const on = (el, type, fn) => el.addEventListener(type, fn, { signal: ac.signal });

  const media = new MediaStream(); // selected video + every audio track
  let videos = []; // {track, id, label}
  let selected = null;
  let pc = null; // the receiving connection, for stats
  let client = null;
  let session = null;
  let monitor = null; // WHEP, HLS: a hidden signalling connection for the room's events
  let hls = null; // HLS: the playing {engine, latencyMs, stop}
  let hlsPicture = false; // HLS: a frame of the current playback was shown
  let latencyMs = null; // HLS: the last latency measured at the player
  let mediaFailures = 0; // WebRTC: media connections that failed without ever connecting
  let everConnected = false; // WebRTC: a media connection of this page was up
  let gone = false;
  let fatal = false;
  let retries = 0;
  let retryTimer = 0;
  let statsTimer = 0;
  let state = 'connecting';
  // Time to first frame: from the start of watching (WebSocket) or from just
  // before the WHEP POST, to the first decoded frame.
  let t0 = performance.now();
  let firstFrameAt = 0;
  // Rates (bitrate, frame rate) are measured between two stats samples at
  // least RATE_WINDOW_MS apart on the same connection: the first sample has
  // nothing to compare with, and a shorter window right after the first
  // keyframe (its packets arrive in a burst) would show absurd rates.
  const RATE_WINDOW_MS = 1000;
  let rateBase = null; // {pc, ts, bytes, frames}: the start of the current window
  const shown = []; // every {fps, kbps} the overlay showed, for tests
  let loaded = false; // the page's load event has passed (see afterLoad)
  let endedOnce = false; // a broadcast was watched here and ended
  let progress = { pc: null, packets: 0, at: 0, stalled: false }; // stall detection
  let sessions = 0; // media sessions started on this page (WHEP: POSTs answered)
  const waits = []; // {code, ms}: why and how long the page waited before each retry (the last 100)
  // The audience count, chat and reactions, from the WebSocket client (or
  // WHEP's monitor).
  const panel = chatPanel('watch', ac.signal);
  const layerSwitch = $('layer-switch');
  layerSwitch.hidden = true;

  document.title = `Watching ${room} - HaloBuzz Live`;
  $('watch-room').textContent = room;
  $('watch-via').textContent = VIA_NAMES[via];
  transportRow();
  for (const id of ['st-res', 'st-fps', 'st-bitrate', 'st-loss', 'st-first', 'st-transport', 'st-latency']) $(id).textContent = '-';
  const placeholder = $('placeholder');
  placeholder.hidden = false;
  player.muted = true;
  $('unmute').textContent = 'Unmute';
  // The stats start folded on a phone, where they sit under the status
  // (style.css) and would push the chat down.
  const folded = window.matchMedia('(max-width: 720px)').matches;
  $('stats').hidden = folded;
  $('stats-toggle').setAttribute('aria-expanded', String(!folded));
  // RECEIVING says, per state, what the page is doing with the room's media:
  // "Receiving" only while something is received.
  const RECEIVING = {
    connecting: 'Connecting', live: 'Receiving', waiting: 'Waiting for a broadcast', error: 'Not receiving anything',
  };
  const PLACEHOLDER = {
    connecting: 'Connecting...',
    waiting: 'Nobody is live in this room right now.',
    live: 'Waiting for the picture...',
    error: 'Not playing.',
  };

  function setState(s, text, kind) {
    if (s === 'live' && state !== 'live') progress.at = performance.now();
    state = s;
    $('st-state').textContent = s;
    $('watch-receiving').textContent = RECEIVING[s] || s;
    if (text !== undefined) setStatus(status, text, kind);
    showPicture();
  }

  // showPicture plays the selected video, or shows the placeholder when
  // there is none: a media element whose video track ended keeps its last
  // frame, so it is detached instead.
  function showPicture() {
    if (gone) return;
    const picture = (via === 'hls' ? hlsPicture : Boolean(selected)) && state !== 'error';
    $('placeholder-text').textContent = picture ? '' : (state === 'waiting' && endedOnce ? 'The broadcast has ended.' : PLACEHOLDER[state] || '');
    placeholder.hidden = picture;
    if (via === 'hls') return; // hls.js (or the browser) feeds the player
    // Audio alone still plays behind the placeholder.
    const want = loaded && media.getTracks().length ? media : null;
    if (player.srcObject !== want) player.srcObject = want;
    if (want) player.play().catch(() => {});
  }

  setState('connecting', 'Connecting...');
  afterLoad(() => {
    loaded = true;
    showPicture();
  });

  function markFirstFrame() {
    if (firstFrameAt || gone) return;
    firstFrameAt = performance.now();
    $('st-first').textContent = `${Math.round(firstFrameAt - t0)} ms`;
  }
  if ('requestVideoFrameCallback' in HTMLVideoElement.prototype) {
    player.requestVideoFrameCallback(() => markFirstFrame());
  }
  // HLS: the picture shows from the first frame of each playback.
  on(player, 'timeupdate', () => {
    if (via !== 'hls' || !hls || hlsPicture || player.videoWidth === 0) return;
    hlsPicture = true;
    markFirstFrame();
    retries = 0;
    setState('live', fallback ? `${fallback}: playing LL-HLS instead (a second or more behind).` : 'Live.', fallback ? 'warn' : 'ok');
  });

  function renderPicker() {
    $('camera-switch').hidden = videos.length < 2;
    picker.replaceChildren(...videos.map((v, i) => {
      const o = new Option(v.label || `Camera ${i + 1}`, String(i));
      o.selected = v === selected;
      return o;
    }));
  }

  function selectVideo(v) {
    if (selected) media.removeTrack(selected.track);
    selected = v;
    if (v) media.addTrack(v.track);
    renderPicker();
    showPicture();
  }

  function addTrack(track, id, meta) {
    if (track.kind === 'audio') {
      media.addTrack(track);
    } else {
      const v = { track, id, label: (meta && meta.name) || '' };
      videos.push(v);
      if (client && layerPick.value !== 'high') applyLayer(v);
      if (!selected) selectVideo(v);
      else renderPicker();
    }
    track.addEventListener('ended', () => removeTrack((x) => x === track));
    showPicture(); // attaches the stream (audio may come before video)
    // A broadcast that starts again arrives on a connection that is up.
    if (pc && pc.connectionState === 'connected') setState('live', 'Live.', 'ok');
    else if (state !== 'live') setStatus(status, 'Connecting media...');
  }

  function removeTrack(match) {
    for (const t of media.getAudioTracks()) if (match(t, t.id)) media.removeTrack(t);
    const gonev = videos.filter((v) => match(v.track, v.id));
    if (!gonev.length) {
      showPicture();
      return;
    }
    videos = videos.filter((v) => !gonev.includes(v));
    if (gonev.includes(selected)) {
      media.removeTrack(selected.track);
      selected = null;
      selectVideo(videos[0] || null);
    }
    renderPicker();
    if (!videos.length) {
      endedOnce = true;
      setState('waiting', 'The broadcast has ended. Waiting for it to start again...');
    }
  }

  function clearTracks() {
    for (const t of media.getTracks()) media.removeTrack(t);
    if (videos.length) endedOnce = true;
    videos = [];
    selected = null;
    rateBase = null;
    renderPicker();
    showPicture();
  }

  function onMediaState(s) {
    if (gone) return;
    if (s === 'connected') {
      retries = 0;
      everConnected = true;
      // A connection with nothing on it (every track ended) is not live.
      if (media.getTracks().length) setState('live', 'Live.', 'ok');
    } else if (s === 'disconnected') setStatus(status, 'Network trouble, trying to recover...', 'warn');
    else if (s === 'failed') lost(new PageError('media_failed', 'The media connection failed.'));
  }

  // lost ends the current session and retries, unless retrying cannot help.
  function lost(err) {
    if (gone || retryTimer) return;
    const c = client;
    const s = session;
    client = session = null;
    pc = null;
    if (c) c.leave();
    if (s) s.stop();
    clearTracks();
    if (via === 'whep' && err.code === 'not_found') {
      // WHEP answers 404 while nothing is published: look again when the
      // server says (Retry-After), or in 10 s if it does not say.
      const wait = err.retryAfter > 0 ? err.retryAfter : 10000;
      waits.push({ code: err.code, ms: wait });
      if (waits.length > 100) waits.shift();
      setState('waiting', 'Waiting for the broadcaster to go live...');
      retryTimer = setTimeout(() => {
        retryTimer = 0;
        connect();
      }, wait);
      return;
    }
    // The server asked to wait (429 too_many_pending, 503 with
    // Retry-After): wait that long and try again, however often; the
    // server, not the page, knows when a place is free.
    const asked = err.retryAfter > 0 && !fatal && !NO_RETRY.has(err.code);
    // WebRTC cannot get through from here (its media never connected,
    // twice), or fails for good: HLS may.
    if (err.code === 'media_failed' && !everConnected) mediaFailures++;
    const forGood = !asked && (fatal || NO_RETRY.has(err.code) || retries >= 6);
    if ((forGood || mediaFailures >= 2) && !NO_FALLBACK.has(err.code)) {
      fallBack(`WebRTC did not work here (${describe(err)})`);
      return;
    }
    if (forGood) {
      setState('error', describe(err), 'error');
      return;
    }
    // A session the server ended is replaced at once, the first time.
    let wait;
    if (asked) wait = err.retryAfter;
    else {
      wait = err.code === 'session_ended' && retries === 0 ? 0 : backoff(retries);
      retries++;
    }
    waits.push({ code: err.code || '', ms: wait });
    if (waits.length > 100) waits.shift();
    setState('connecting', `${describe(err)} Retrying in ${Math.round(wait / 1000)} s...`, 'warn');
    retryTimer = setTimeout(() => {
      retryTimer = 0;
      connect();
    }, wait);
  }

  // showLayers shows the quality picker only when a video track of the
  // broadcast has layers to pick from (simulcast).
  function showLayers(c) {
    layerSwitch.hidden = ![...c.tracks.values()].some((t) => t.kind === 'video' && (t.layers || []).length > 1);
  }

  // follow makes c the client of the room's events: the panel and the
  // quality picker.
  function follow(c) {
    panel.attach(c);
    const opts = { signal: ac.signal };
    for (const type of ['joined', 'track_published', 'track_unpublished']) c.addEventListener(type, () => showLayers(c), opts);
  }

  // startMonitor (WHEP) joins the room hidden, without media, for its
  // events: WHEP has none. It is not counted as a viewer.
  function startMonitor(token) {
    if (monitor) return;
    const m = new HaloClient({ token, room, autoSubscribe: false, hidden: true, refreshToken: (cl) => refreshDevToken(cl, room, false) });
    monitor = m;
    follow(m);
    m.addEventListener('close', () => {
      if (monitor !== m) return;
      monitor = null;
      panel.attach(null);
      panel.setViewers(null);
    });
    m.connect().then(() => m.join()).catch(() => {
      if (monitor !== m) return;
      monitor = null;
      panel.attach(null);
      m.leave();
    });
  }

  async function connectWS(token) {
    const c = new HaloClient({ token, room, refreshToken: (cl) => refreshDevToken(cl, room, false) });
    client = c;
    follow(c);
    c.addEventListener('joined', (e) => {
      if (!(e.detail.tracks || []).length) setState('waiting', 'Waiting for the broadcaster to go live...');
    });
    c.addEventListener('track', (e) => {
      if (client !== c) return;
      pc = c.subscriber;
      addTrack(e.detail.track, e.detail.id, e.detail.meta);
    });
    c.addEventListener('track_published', () => { if (state === 'waiting') setStatus(status, 'The broadcast is starting...'); });
    c.addEventListener('track_unpublished', (e) => removeTrack((_, id) => id === e.detail.track_id));
    c.addEventListener('connectionstatechange', (e) => { if (client === c && e.detail.target === 'subscriber') onMediaState(e.detail.state); });
    c.addEventListener('error', (e) => {
      if (NO_RETRY.has(e.detail.code)) fatal = true;
      setStatus(status, `Server error: ${e.detail.code}: ${e.detail.message}`, 'error');
    });
    c.addEventListener('close', (e) => {
      if (client === c && !e.detail.wasClean) lost(new PageError('closed', `Lost the connection to the server (${e.detail.code}).`));
    });
    await c.connect();
    await c.join();
  }

  // applyLayer asks the server for the chosen quality of video v (WebSocket;
  // a WHEP session is opened again with ?layer= instead).
  function applyLayer(v) {
    if (!client) return;
    client.setLayer(v.id, layerPick.value).catch((err) => setStatus(status, `Quality: ${describe(err)}`, 'error'));
  }

  async function connectWHEP(token) {
    const q = layerPick.value === 'high' ? '' : `?layer=${layerPick.value}`;
    const s = await whep(`/whep/${encodeURIComponent(room)}${q}`, token, {
      onTrack: (e) => addTrack(e.track, (e.streams[0] && e.streams[0].id) || e.track.id, null),
      beforePost: () => { if (!firstFrameAt) t0 = performance.now(); },
    });
    if (gone) {
      s.stop();
      return;
    }
    const conn = s.pc;
    session = s;
    sessions++;
    pc = conn;
    let stuck = 0; // a timer while the connection says disconnected
    const ended = () => {
      if (session !== s) return;
      clearTimeout(stuck);
      lost(new PageError('session_ended', 'The server ended the session.'));
    };
    // Chromium keeps the connection "connected" when the server closes
    // DTLS (close_notify): only the DTLS transport says "closed" (a fatal
    // alert: "failed"). Either ends the session as closed would.
    for (const t of new Set(conn.getReceivers().map((r) => r.transport).filter(Boolean))) {
      const check = () => { if (t.state === 'closed' || t.state === 'failed') ended(); };
      t.addEventListener('statechange', check);
      check();
    }
    conn.addEventListener('connectionstatechange', () => {
      if (session !== s) return;
      clearTimeout(stuck);
      // The server ended the session (a DTLS close_notify: the node drains,
      // the broadcast or the room ended, the republish grace expired):
      // POST again at once. A draining node answers 307 to a live node; a
      // broadcast that is over answers 404, which waits for the next one.
      if (conn.connectionState === 'closed') ended();
      else {
        // Disconnected for long (the node is gone without a word): the
        // same, without waiting for ICE to call it failed.
        if (conn.connectionState === 'disconnected') {
          stuck = setTimeout(() => { if (session === s) lost(new PageError('media_failed', 'The media connection was lost.')); }, 5000);
        }
        onMediaState(conn.connectionState);
      }
    });
    onMediaState(conn.connectionState);
  }

  // watchMedia gives this attempt's media connection MEDIA_CONNECT_MS to
  // come up: a browser whose network lets no media through (UDP blocked,
  // no TURN) may otherwise stay "connecting" for ever, ICE never calling
  // it failed.
  const MEDIA_CONNECT_MS = 20000;
  let attemptSeq = 0;
  function watchMedia() {
    const mine = ++attemptSeq;
    setTimeout(() => {
      if (gone || mine !== attemptSeq || via === 'hls' || state === 'live' || retryTimer) return;
      // Only tracks the server sent are waited for (a room with nothing
      // published has no media connection to wait for).
      if (!media.getTracks().length || (pc && pc.connectionState === 'connected')) return;
      lost(new PageError('media_failed', `The media connection did not come up within ${MEDIA_CONNECT_MS / 1000} s.`));
    }, MEDIA_CONNECT_MS);
  }

  // fallBack leaves WebRTC for HLS, saying why on the page.
  function fallBack(why) {
    via = 'hls';
    fallback = why;
    $('watch-via').textContent = `${VIA_NAMES.hls} (fallback)`;
    setState('connecting', `${why}: trying LL-HLS instead...`, 'warn');
    connect();
  }

  // connectHLS plays the room's LL-HLS. The room's events (the audience,
  // chat) come from a hidden signalling connection when the page has a
  // token; HLS itself needs none.
  async function connectHLS() {
    getToken(room, params, false).then((token) => { if (!gone && via === 'hls') startMonitor(token); }).catch(() => {});
    const url = hlsURL(room, params);
    hlsPicture = false;
    const p = await playHLS(player, url, { error: () => { if (hls === p) hlsFailed(url); } });
    if (gone) {
      p.stop();
      return;
    }
    hls = p;
    sessions++;
    $('st-transport').textContent = `LL-HLS (${p.engine})`;
  }

  // hlsFailed asks the node why the playlist stopped playing, shows it and
  // starts again when that can help: a broadcast that ended or has not
  // started (404 hls_no_broadcast), a muxer starting, a network failure.
  // A broadcast HLS cannot carry (415 hls_codec_unsupported: VP8) is
  // explained, and looked at again every 10 s (the broadcaster may switch
  // to H.264).
  async function hlsFailed(url) {
    const p = hls;
    hls = null;
    if (p) p.stop();
    const wasPlaying = hlsPicture;
    hlsPicture = false;
    latencyMs = null;
    const err = (await playlistError(url)) || new PageError('hls_stopped', 'HLS playback stopped.');
    if (gone || via !== 'hls' || retryTimer) return;
    if (wasPlaying) endedOnce = true;
    let wait;
    if (err.code === 'hls_no_broadcast' || err.code === 'hls_not_found') {
      wait = Math.max(err.retryAfter || 0, 2000);
      setState('waiting', wasPlaying ? 'The broadcast has ended. Waiting for it to start again...' : 'Waiting for the broadcaster to go live...');
    } else if (err.code === 'hls_codec_unsupported') {
      wait = 10000;
      setState('error', `This broadcast cannot be watched over HLS: ${err.message}`, 'error');
    } else if (['hls_disabled', 'hls_bad_signature', 'hls_signature_expired', 'hls_unsupported'].includes(err.code)) {
      setState('error', `HLS: ${err.message}`, 'error');
      return;
    } else {
      wait = err.retryAfter > 0 ? err.retryAfter : backoff(retries++);
      setState('connecting', `HLS: ${describe(err)} Retrying in ${Math.round(wait / 1000)} s...`, 'warn');
    }
    waits.push({ code: err.code || '', ms: wait });
    if (waits.length > 100) waits.shift();
    retryTimer = setTimeout(() => {
      retryTimer = 0;
      connect();
    }, wait);
  }

  async function connect() {
    if (via === 'hls') {
      try {
        await connectHLS();
      } catch (err) {
        if (!gone) setState('error', describe(err), 'error');
      }
      return;
    }
    watchMedia();
    try {
      const token = await getToken(room, params, false);
      if (gone) return;
      if (via === 'whep') {
        startMonitor(token);
        await connectWHEP(token);
      } else await connectWS(token);
    } catch (err) {
      lost(err);
    }
  }

  // sample reads the receiving connection's stats.
  async function sample() {
    const s = {
      framesDecoded: 0, frameWidth: 0, frameHeight: 0, fps: 0,
      videoPacketsReceived: 0, audioPacketsReceived: 0, packetsLost: 0, packetsReceived: 0, bytes: 0, ts: 0,
      iceChecksSent: 0, iceChecksAnswered: 0, connectionState: '', transport: '',
    };
    const conn = pc;
    s.pc = conn;
    if (via === 'hls') return sampleHLS(s);
    if (!conn) return s;
    let report;
    try {
      report = await conn.getStats();
    } catch {
      return s;
    }
    s.connectionState = conn.connectionState;
    let video = null;
    let pair = null; // the selected candidate pair
    report.forEach((r) => {
      if (r.type === 'transport' && r.selectedCandidatePairId) pair = report.get(r.selectedCandidatePairId) || pair;
      if (r.type === 'candidate-pair' && r.selected) pair = r; // Firefox: no transport stats
      if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') {
        // The ICE checks of the pair in use (consent checks once up), and
        // the server's answers to them.
        s.iceChecksSent = Math.max(s.iceChecksSent, r.requestsSent || 0);
        s.iceChecksAnswered = Math.max(s.iceChecksAnswered, r.responsesReceived || 0);
      }
      if (r.type !== 'inbound-rtp') return;
      const kind = r.kind || r.mediaType;
      s.packetsReceived += r.packetsReceived || 0;
      s.packetsLost += Math.max(0, r.packetsLost || 0);
      s.bytes += r.bytesReceived || 0;
      s.ts = Math.max(s.ts, r.timestamp || 0);
      if (kind === 'audio') s.audioPacketsReceived += r.packetsReceived || 0;
      if (kind !== 'video') return;
      s.videoPacketsReceived += r.packetsReceived || 0;
      const isSelected = selected && r.trackIdentifier === selected.track.id;
      if (!video || isSelected || (r.framesDecoded || 0) > (video.framesDecoded || 0)) video = r;
    });
    s.transport = transportName(pair && report.get(pair.localCandidateId));
    if (video) {
      s.framesDecoded = video.framesDecoded || 0;
      s.frameWidth = video.frameWidth || 0;
      s.frameHeight = video.frameHeight || 0;
      s.fps = video.framesPerSecond || 0;
    }
    if (s.framesDecoded > 0) markFirstFrame();
    return s;
  }

  // sampleHLS fills s from the player: the frames it decoded, the picture's
  // size, the bytes of audio it decoded (Chromium), and the latency.
  function sampleHLS(s) {
    const q = player.getVideoPlaybackQuality ? player.getVideoPlaybackQuality() : null;
    s.framesDecoded = q ? q.totalVideoFrames : 0;
    s.frameWidth = player.videoWidth;
    s.frameHeight = player.videoHeight;
    s.audioDecodedBytes = player.webkitAudioDecodedByteCount || 0;
    s.transport = hls ? `LL-HLS (${hls.engine})` : '';
    s.ts = performance.now();
    s.pc = hls;
    if (hls) {
      const l = hls.latencyMs();
      if (l !== null) latencyMs = l;
    }
    return s;
  }

  function render(s) {
    $('st-latency').textContent = latencyMs === null ? '-' : `${(latencyMs / 1000).toFixed(2)} s`;
    $('st-transport').textContent = s.transport || '-';
    $('st-res').textContent = s.frameWidth ? `${s.frameWidth}x${s.frameHeight}` : '-';
    const total = s.packetsReceived + s.packetsLost;
    $('st-loss').textContent = total ? `${((100 * s.packetsLost) / total).toFixed(2)} %` : '-';
    // A new connection, or counters that went back (new tracks): a new
    // window starts and the rates are unknown until it is long enough.
    const b = rateBase;
    if (!s.ts || !b || b.pc !== s.pc || s.ts < b.ts || s.bytes < b.bytes || s.framesDecoded < b.frames) {
      rateBase = s.ts ? { pc: s.pc, ts: s.ts, bytes: s.bytes, frames: s.framesDecoded } : null;
      if (!b || !s.ts || b.pc !== s.pc) {
        $('st-fps').textContent = '-';
        $('st-bitrate').textContent = '-';
      }
      return;
    }
    const dt = s.ts - b.ts; // ms, from the stats' own timestamps
    if (dt < RATE_WINDOW_MS) return; // keep what is shown
    const kbps = ((s.bytes - b.bytes) * 8) / dt;
    const fps = ((s.framesDecoded - b.frames) * 1000) / dt;
    // HLS: the player's bytes are not counted (hls.js fetches ahead).
    if (via === 'hls') $('st-bitrate').textContent = '-';
    else $('st-bitrate').textContent = kbps >= 1000 ? `${(kbps / 1000).toFixed(2)} Mbps` : `${Math.round(kbps)} kbps`;
    $('st-fps').textContent = String(Math.round(fps));
    shown.push({ fps, kbps, ms: dt });
    rateBase = { pc: s.pc, ts: s.ts, bytes: s.bytes, frames: s.framesDecoded };
  }

  // Sample fast until the first frame (for an exact first-frame time), then
  // once a second for the overlay.
  async function statsLoop() {
    if (gone) return;
    const s = await sample();
    if (gone) return;
    render(s);
    checkStall(s);
    statsTimer = setTimeout(statsLoop, firstFrameAt ? 1000 : 50);
  }

  // checkStall notices a live connection on which nothing arrives any more.
  // WHEP has no events: the end of the broadcast looks like this, so the
  // page starts a new session (404 until the broadcaster is back). Over
  // WebSocket the server says when tracks end, so a stall is only shown.
  function checkStall(s) {
    if (via === 'hls') return; // hls.js notices a stall itself (its errors: hlsFailed)
    const now = performance.now();
    const packets = s.videoPacketsReceived + s.audioPacketsReceived;
    if (progress.pc !== pc || packets !== progress.packets) {
      if (progress.stalled && state === 'live') setStatus(status, 'Live.', 'ok');
      progress = { pc, packets, at: now, stalled: false };
      return;
    }
    if (state !== 'live' || progress.stalled || now - progress.at < 5000) return;
    progress.stalled = true;
    if (via === 'whep') lost(new PageError('stalled', 'The broadcast stopped.'));
    else setStatus(status, 'No media is arriving...', 'warn');
  }

  window.haloStats = async () => {
    const s = await sample();
    return {
      framesDecoded: s.framesDecoded,
      frameWidth: s.frameWidth,
      frameHeight: s.frameHeight,
      fps: s.fps,
      videoPacketsReceived: s.videoPacketsReceived,
      audioPacketsReceived: s.audioPacketsReceived,
      packetsLost: s.packetsLost,
      iceChecksSent: s.iceChecksSent,
      iceChecksAnswered: s.iceChecksAnswered,
      connectionState: s.connectionState,
      transport: s.transport,
      transportShown: $('st-transport').textContent,
      // HLS: how the page plays (ws, whep, hls), why it fell back to HLS,
      // the latency at the player (ms) and the overlay's text of it.
      via,
      fallback,
      latencyMs: latencyMs === null ? null : Math.round(latencyMs),
      latencyShown: $('st-latency').textContent,
      audioDecodedBytes: s.audioDecodedBytes || 0,
      hlsEngine: (hls && hls.engine) || '',
      firstFrameMs: firstFrameAt ? Math.round(firstFrameAt - t0) : null,
      state,
      // What the viewer sees: the overlay's rates so far, the placeholder,
      // and whether the player shows a picture.
      shown: shown.slice(),
      placeholder: !placeholder.hidden,
      placeholderText: placeholder.hidden ? '' : $('placeholder-text').textContent,
      pictureWidth: player.videoWidth,
      receiving: $('watch-hint').textContent,
      // WHEP: how many sessions this page has had, and the current one's
      // URL (on the node that answered the POST).
      sessions,
      session: (session && session.location) || '',
      waits: waits.slice(),
    };
  };

  on($('unmute'), 'click', () => {
    player.muted = !player.muted;
    $('unmute').textContent = player.muted ? 'Unmute' : 'Mute';
    player.play().catch(() => {});
  });
  on($('stats-toggle'), 'click', () => {
    const box = $('stats');
    box.hidden = !box.hidden;
    $('stats-toggle').setAttribute('aria-expanded', String(!box.hidden));
  });
  on(picker, 'change', () => selectVideo(videos[Number(picker.value)] || null));
  on(layerPick, 'change', () => {
    if (client) {
      for (const v of videos) applyLayer(v);
    } else if (session) {
      // WHEP: a new session with the new ?layer=.
      const s = session;
      session = null;
      pc = null;
      s.stop();
      clearTracks();
      connect();
    }
  });

  connect();
  statsLoop();

  return {
    async stop() {
      gone = true;
      ac.abort();
      clearTimeout(retryTimer);
      clearTimeout(statsTimer);
      const c = client;
      const s = session;
      const m = monitor;
      client = session = monitor = null;
      if (hls) hls.stop();
      hls = null;
      panel.attach(null);
      pc = null;
      clearTracks();
      player.srcObject = null;
      placeholder.hidden = false;
      $('placeholder-text').textContent = '';
      window.haloStats = undefined;
      await Promise.all([c && c.leave(), s && s.stop(), m && m.leave()]);
    },
  };
}

// transportRow adds the Transport line to the stats overlay, once: how this
// browser's media reaches the server.
function transportRow() {
  if ($('st-transport')) return;
  const dt = document.createElement('dt');
  dt.textContent = 'Transport';
  dt.title = 'UDP: direct. TCP: direct over TCP (ICE-TCP), when UDP is blocked. TURN/UDP, TURN/TCP, TURN/TLS: through the relay, reached over that protocol.';
  const dd = document.createElement('dd');
  dd.id = 'st-transport';
  dd.textContent = '-';
  const first = $('st-first');
  const stats = $('stats');
  if (first && first.previousElementSibling) stats.insertBefore(dt, first.previousElementSibling);
  else stats.append(dt);
  stats.insertBefore(dd, dt.nextSibling);
}

// transportName names the transport of a selected pair's local candidate
// (an RTCIceCandidateStats): UDP, TCP (ICE-TCP), or TURN/UDP, TURN/TCP,
// TURN/TLS for a relay, by how the browser reaches the TURN server; '' when
// there is no selected pair yet.
export function transportName(local) {
  if (!local) return '';
  if (local.candidateType === 'relay') return `TURN/${(local.relayProtocol || 'udp').toUpperCase()}`;
  return (local.protocol || '').toUpperCase();
}
