// live.js: the broadcast view, #/live/<room>. Camera and microphone from
// the device lists, a preview, Start/Stop over the WebSocket protocol (or
// WHIP with ?via=whip), the viewer count and a share link. "For HLS / TVs"
// (?codec=h264) sends H.264, which LL-HLS can carry (VP8, the browser's
// default, it cannot).

import { HaloClient, whip } from './halo-client.js';
import { chatPanel } from './chat.js';
import { $, setStatus, describe, PageError, getToken, afterLoad, refreshDevToken, backoff, NO_RETRY } from './page.js';

// REMOVED_WAIT_MS is how long the end of a WHIP session waits for the
// hidden socket's removed before it counts as a drain (go live again).
const REMOVED_WAIT_MS = 1000;

// QUALITY are the capture sizes the live page offers. 480p is the default:
// Chrome starts every connection at a low bandwidth estimate and sends HD at
// a reduced size for its first many seconds, while VGA is sharp at once.
const QUALITY = {
  sd: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } },
  hd: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } },
};

function videoConstraints(deviceId, quality = 'sd') {
  const c = { ...(QUALITY[quality] || QUALITY.sd) };
  if (deviceId) c.deviceId = { exact: deviceId };
  return c;
}

function audioConstraints(deviceId) {
  return deviceId ? { deviceId: { exact: deviceId } } : true;
}

// capture opens camera and microphone; with only one of them present it
// returns what it could open.
async function capture(videoId, audioId, quality) {
  const gum = (c) => navigator.mediaDevices.getUserMedia(c);
  try {
    return await gum({ video: videoConstraints(videoId, quality), audio: audioConstraints(audioId) });
  } catch (err) {
    if (err.name !== 'NotFoundError' && err.name !== 'OverconstrainedError') throw err;
  }
  const tracks = [];
  for (const c of [{ video: videoConstraints(videoId, quality) }, { audio: audioConstraints(audioId) }]) {
    try {
      tracks.push(...(await gum(c)).getTracks());
    } catch {
      // that kind of device is missing
    }
  }
  if (!tracks.length) throw new PageError('no_device', 'No camera or microphone was found.');
  return new MediaStream(tracks);
}

export function liveView(room, params) {
  const via = params.get('via') === 'whip' ? 'whip' : 'ws';
  const preview = $('preview');
  const camSel = $('camera-select');
  const micSel = $('mic-select');
  const qualitySel = $('quality-select');
  const simulcastBox = $('simulcast-toggle');
  // H.264 first, for the room's LL-HLS; ?codec=h264 presets it.
  const h264Box = $('h264-toggle');
  h264Box.checked = params.get('codec') === 'h264';
  const videoCodec = () => (h264Box.checked ? 'video/H264' : '');
  // Simulcast is on by default from 720p up (a setting the user may change;
  // it applies from the next Start). ?quality=hd and ?simulcast=0|1 preset them.
  let simulcastTouched = false;
  if (params.get('quality') === 'hd' || params.get('quality') === 'sd') qualitySel.value = params.get('quality');
  simulcastBox.checked = qualitySel.value === 'hd';
  if (params.has('simulcast')) {
    simulcastBox.checked = params.get('simulcast') === '1';
    simulcastTouched = true;
  }
  const startBtn = $('start');
  const stopBtn = $('stop');
  const status = $('live-status');
  const ac = new AbortController();
  const on = (el, type, fn) => el.addEventListener(type, fn, { signal: ac.signal });
  // The room's chat and reactions, while live (the count is the badge).
  const panel = chatPanel('live', ac.signal);

  let stream = null;
  let client = null; // HaloClient publishing (WebSocket)
  let session = null; // WHIP session
  let monitor = null; // HaloClient that only listens for viewer counts (WHIP)
  let attempt = 0; // bumped by every Start/Stop so stale callbacks do nothing
  let gone = false;
  let state = 'idle';
  // A broadcast lost without the user's Stop (its node stopped, paused or
  // drained, the network dropped) starts again by itself: retryTimer is
  // the next try, retries how many failed in a row (backoff).
  let retryTimer = 0;
  let retries = 0;

  // window.haloSendLayers(): the simulcast encodings the page sends now,
  // {rid: active} (for tests and for the curious).
  window.haloSendLayers = () => {
    const conn = client ? client.publisher : session ? session.pc : null;
    const out = {};
    if (!conn) return out;
    for (const sender of conn.getSenders()) {
      if (!sender.track || sender.track.kind !== 'video') continue;
      for (const e of sender.getParameters().encodings || []) if (e.rid) out[e.rid] = e.active !== false;
    }
    return out;
  };
  // window.haloSendCodec(): the video codec the page sends now (its MIME
  // type), '' before it sends.
  window.haloSendCodec = async () => {
    const conn = client ? client.publisher : session ? session.pc : null;
    if (!conn) return '';
    const report = await conn.getStats();
    let codec = '';
    report.forEach((r) => {
      if (r.type === 'outbound-rtp' && (r.kind || r.mediaType) === 'video' && r.codecId && report.get(r.codecId)) codec = report.get(r.codecId).mimeType;
    });
    return codec;
  };
  document.title = `Live: ${room} - HaloBuzz Live`;
  $('live-room').textContent = room;
  $('live-via').textContent = via === 'whip' ? 'WHIP' : 'WebSocket';
  // The share link watches the way this page sends: a WHIP broadcaster's
  // viewers use WHEP, so the whole path is plain HTTP (no token in it).
  const share = new URL(location.href);
  share.hash = `#/watch/${encodeURIComponent(room)}${via === 'whip' ? '?via=whep' : ''}`;
  $('share-link').value = share.href;
  $('copy-result').textContent = '';

  function setState(s, text, kind) {
    state = s;
    window.haloState = s;
    $('live-badge').hidden = s !== 'live';
    startBtn.disabled = !stream || s === 'connecting' || s === 'live';
    stopBtn.disabled = s !== 'connecting' && s !== 'live' && s !== 'reconnecting';
    if (text !== undefined) setStatus(status, text, kind);
  }

  function setViewers(n) {
    window.haloViewerCount = n;
    $('viewer-count').textContent = n === null ? '?' : String(n);
  }

  setViewers(0);
  setState('idle', 'Asking for camera and microphone...');

  async function listDevices() {
    let devices = [];
    try {
      devices = await navigator.mediaDevices.enumerateDevices();
    } catch {
      return;
    }
    const fill = (sel, kind, current, fallback) => {
      sel.replaceChildren();
      let n = 0;
      for (const d of devices.filter((x) => x.kind === kind)) {
        n++;
        const o = new Option(d.label || `${fallback} ${n}`, d.deviceId);
        o.selected = d.deviceId === current;
        sel.append(o);
      }
      if (!n) sel.append(new Option(`No ${fallback.toLowerCase()}`, ''));
      sel.disabled = n === 0;
    };
    const v = stream && stream.getVideoTracks()[0];
    const a = stream && stream.getAudioTracks()[0];
    fill(camSel, 'videoinput', v && v.getSettings().deviceId, 'Camera');
    fill(micSel, 'audioinput', a && a.getSettings().deviceId, 'Microphone');
  }

  async function openDevices() {
    try {
      const s = await capture('', '', qualitySel.value);
      if (gone) {
        s.getTracks().forEach((t) => t.stop());
        return;
      }
      stream = s;
      afterLoad(() => {
        if (gone || stream !== s) return;
        preview.srcObject = s;
        preview.play().catch(() => {});
      });
    } catch (err) {
      const why = err.name === 'NotAllowedError' ? 'permission was denied' : describe(err);
      setState('error', `Camera and microphone are unavailable: ${why}.`, 'error');
      return;
    }
    await listDevices();
    if (!gone) setState('idle', 'Ready. Press Start to go live.');
  }

  // publishingPC is the connection whose senders carry the stream.
  const publishingPC = () => (client && client.publisher) || (session && session.pc) || null;

  async function switchDevice(kind, deviceId) {
    if (!stream || !deviceId) return;
    const old = kind === 'video' ? stream.getVideoTracks()[0] : stream.getAudioTracks()[0];
    const open = async () => (await navigator.mediaDevices.getUserMedia(
      kind === 'video' ? { video: videoConstraints(deviceId, qualitySel.value) } : { audio: audioConstraints(deviceId) })).getTracks()[0];
    let fresh;
    try {
      fresh = await open();
    } catch {
      // Some devices open one camera at a time: release the old one first.
      if (old) old.stop();
      try {
        fresh = await open();
      } catch (err) {
        setStatus(status, `Cannot open that ${kind === 'video' ? 'camera' : 'microphone'}: ${describe(err)}`, 'error');
        return;
      }
    }
    if (gone) {
      fresh.stop();
      return;
    }
    const pc = publishingPC();
    const sender = pc && old && pc.getSenders().find((s) => s.track === old);
    if (sender) await sender.replaceTrack(fresh);
    if (old) {
      stream.removeTrack(old);
      old.stop();
    }
    stream.addTrack(fresh);
    preview.srcObject = stream;
    if (pc && !sender) setStatus(status, 'The new device is used from the next Start.', 'warn');
  }

  // setQuality changes the capture size of the camera in place, live or not.
  async function setQuality() {
    if (!simulcastTouched) simulcastBox.checked = qualitySel.value === 'hd';
    const v = stream && stream.getVideoTracks()[0];
    if (!v) return;
    const c = videoConstraints('', qualitySel.value);
    try {
      await v.applyConstraints({ width: c.width, height: c.height, frameRate: c.frameRate });
    } catch (err) {
      setStatus(status, `The camera cannot do that: ${describe(err)}`, 'error');
    }
  }

  function trackMeta() {
    return stream.getTracks().map((t) => ({
      track_id: t.id,
      source: t.kind === 'video' ? 'camera' : 'microphone',
      name: (t.label || '').slice(0, 128),
    }));
  }

  function onMediaState(my, s) {
    if (my !== attempt) return;
    if (s === 'connected') {
      retries = 0;
      setState('live', 'You are live.', 'ok');
    } else if (s === 'disconnected') setStatus(status, 'Network trouble, trying to recover...', 'warn');
    else if (s === 'failed') lost(my, new PageError('media_failed', 'The media connection failed.'));
  }

  // removedError is a moderator's removal (the removed event): the page
  // stops instead of going live again.
  function removedError(d) {
    const why = d.reason ? `: ${d.reason}` : '';
    return new PageError('removed', d.room_ended ? `A moderator ended the room${why}.` : `A moderator removed you from the room${why}.`);
  }

  // lost ends a broadcast that ended without the user's Stop and goes live
  // again: at once after a session the server ended (a drain answers the
  // new POST with a redirect to another node), else after a growing pause,
  // or when the server says (Retry-After). It gives up only where trying
  // again cannot help (a refused token, a ban).
  function lost(my, err) {
    if (my !== attempt || gone || retryTimer) return;
    attempt++;
    teardown();
    if (NO_RETRY.has(err.code) || err.code === 'banned' || err.code === 'removed') {
      setState('error', `${describe(err)} Press Start to try again.`, 'error');
      return;
    }
    let wait;
    if (err.retryAfter > 0) wait = err.retryAfter;
    else {
      wait = err.code === 'session_ended' && retries === 0 ? 0 : backoff(retries);
      retries++;
    }
    setState('reconnecting', `${describe(err)} Going live again in ${Math.round(wait / 1000)} s...`, 'warn');
    retryTimer = setTimeout(() => {
      retryTimer = 0;
      start();
    }, wait);
  }

  async function startWS(token, my) {
    const c = new HaloClient({
      token, room, autoSubscribe: false, simulcast: simulcastBox.checked, videoCodec: videoCodec(), refreshToken: (cl) => refreshDevToken(cl, room, true),
    });
    client = c;
    panel.attach(c);
    c.addEventListener('viewer_count', (e) => { if (my === attempt) setViewers(e.detail.count); });
    c.addEventListener('connectionstatechange', (e) => {
      if (e.detail.target === 'publisher') onMediaState(my, e.detail.state);
    });
    c.addEventListener('error', (e) => { if (my === attempt) setStatus(status, `Server error: ${e.detail.code}: ${e.detail.message}`, 'error'); });
    c.addEventListener('removed', (e) => lost(my, removedError(e.detail)));
    c.addEventListener('close', (e) => {
      if (my !== attempt || e.detail.wasClean) return;
      lost(my, new PageError('closed', `Lost the connection to the server (${e.detail.code}).`));
    });
    await c.connect();
    await c.join();
    await c.publish(stream, trackMeta());
  }

  async function startWHIP(token, my) {
    const s = await whip(`/whip/${encodeURIComponent(room)}`, token, stream, { simulcast: simulcastBox.checked, videoCodec: videoCodec() });
    if (my !== attempt) {
      s.stop();
      return;
    }
    session = s;
    const conn = s.pc;
    conn.addEventListener('connectionstatechange', () => onMediaState(my, conn.connectionState));
    onMediaState(my, conn.connectionState);
    // The server ends a WHIP session with a DTLS close_notify (a drain, a
    // moderator): only the DTLS transport says so ("closed").
    for (const t of new Set(conn.getSenders().map((x) => x.transport).filter(Boolean))) {
      t.addEventListener('statechange', () => {
        // A removal reaches the hidden socket below too (removed): give
        // it a moment to tell a removal from a drain before going live again.
        if (t.state === 'closed' || t.state === 'failed') {
          setTimeout(() => lost(my, new PageError('session_ended', 'The server ended the session.')), monitor ? REMOVED_WAIT_MS : 0);
        }
      });
    }
    // WHIP has no events: a hidden signalling connection (not announced,
    // not counted as a viewer) brings the viewer count.
    const m = new HaloClient({ token, room, autoSubscribe: false, hidden: true, refreshToken: (cl) => refreshDevToken(cl, room, true) });
    monitor = m;
    panel.attach(m);
    m.addEventListener('viewer_count', (e) => { if (my === attempt) setViewers(e.detail.count); });
    m.addEventListener('removed', (e) => lost(my, removedError(e.detail)));
    m.addEventListener('close', (e) => { if (my === attempt && !e.detail.wasClean) setViewers(null); });
    m.connect().then(() => m.join()).catch(() => { if (my === attempt) setViewers(null); });
  }

  async function start() {
    if (!stream || state === 'connecting' || state === 'live') return;
    clearTimeout(retryTimer);
    retryTimer = 0;
    const my = ++attempt;
    setState('connecting', 'Connecting...');
    try {
      const token = await getToken(room, params, true);
      if (my !== attempt) return;
      if (via === 'whip') await startWHIP(token, my);
      else await startWS(token, my);
      if (my === attempt && state === 'connecting') setStatus(status, 'Connecting media...');
    } catch (err) {
      lost(my, err);
    }
  }

  function teardown() {
    const c = client;
    const s = session;
    const m = monitor;
    client = session = monitor = null;
    panel.attach(null);
    const done = [];
    if (c) done.push(c.leave());
    if (s) done.push(s.stop());
    if (m) done.push(m.leave());
    setViewers(0);
    return Promise.all(done);
  }

  async function stop() {
    clearTimeout(retryTimer);
    retryTimer = 0;
    retries = 0;
    attempt++;
    await teardown();
    setState('idle', 'Stopped. Press Start to go live again.');
  }

  async function copyLink() {
    const input = $('share-link');
    const out = $('copy-result');
    try {
      await navigator.clipboard.writeText(input.value);
      out.textContent = 'Link copied.';
    } catch {
      input.select();
      // Clipboard API needs a secure context; the old way still works on http.
      out.textContent = document.execCommand('copy') ? 'Link copied.' : 'Select the link and copy it.';
    }
  }

  on(startBtn, 'click', start);
  on(stopBtn, 'click', stop);
  on($('copy-link'), 'click', copyLink);
  on(camSel, 'change', () => switchDevice('video', camSel.value));
  on(micSel, 'change', () => switchDevice('audio', micSel.value));
  on(qualitySel, 'change', setQuality);
  on(simulcastBox, 'change', () => { simulcastTouched = true; });
  on(navigator.mediaDevices, 'devicechange', listDevices);
  openDevices();

  return {
    async stop() {
      gone = true;
      clearTimeout(retryTimer);
      ac.abort();
      attempt++;
      await teardown();
      if (stream) stream.getTracks().forEach((t) => t.stop());
      stream = null;
      preview.srcObject = null;
      window.haloState = 'idle';
    },
  };
}
