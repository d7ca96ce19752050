// hls-play.js: plays a room's LL-HLS (/hls/<room>/index.m3u8) in a video
// element, for the watch page's ?via=hls and its fallback where WebRTC is
// unavailable. It uses the pinned hls.js the node serves (/vendor/hls.min.js,
// loaded only when needed), or the browser's own HLS (Safari, TVs) where
// hls.js cannot run (no Media Source Extensions).

import { PageError } from './page.js';

// hlsURL is the room's playlist on this node. A signed URL's exp and sig
// (hls.signing_secret), given to the page as ?exp=&sig=, go with it.
export function hlsURL(room, params) {
  const q = new URLSearchParams();
  for (const k of ['exp', 'sig']) if (params.get(k)) q.set(k, params.get(k));
  const s = q.toString();
  return `/hls/${encodeURIComponent(room)}/index.m3u8${s ? `?${s}` : ''}`;
}

let loading = null;

// loadHlsJs loads the vendored hls.js once and resolves with its Hls class.
export function loadHlsJs() {
  if (window.Hls) return Promise.resolve(window.Hls);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = '/vendor/hls.min.js';
      s.onload = () => (window.Hls ? resolve(window.Hls) : reject(new PageError('hls_unavailable', 'hls.js did not load.')));
      s.onerror = () => {
        loading = null;
        reject(new PageError('network', 'Cannot load the HLS player (/vendor/hls.min.js).'));
      };
      document.head.append(s);
    });
  }
  return loading;
}

// playlistError asks the node why url does not play: its error answers are
// "code: message" (docs/protocol.md, LL-HLS), e.g. 415
// hls_codec_unsupported for a VP8 broadcast. It resolves with a PageError
// (retryAfter in ms when the node says), or null when the playlist answers.
export async function playlistError(url) {
  let res;
  try {
    res = await fetch(url, { cache: 'no-store' });
  } catch (err) {
    return new PageError('network', `Cannot reach the server for HLS: ${err.message || err}`);
  }
  if (res.ok) return null;
  const body = (await res.text().catch(() => '')).trim();
  const m = /^([a-z_]+):\s*(.*)$/s.exec(body);
  const err = new PageError(m ? m[1] : `http_${res.status}`, m ? m[2] : `HLS answered ${res.status} ${res.statusText}`);
  const after = Number(res.headers.get('Retry-After'));
  err.retryAfter = after > 0 ? after * 1000 : 0;
  return err;
}

// playHLS plays url in video. on.error(kind) is called once when playback
// fails for good (the caller asks playlistError why and starts again); it
// returns {engine, latencyMs(), stop()}. latencyMs is now minus the
// wall-clock time of the frame on screen, from the playlist's
// EXT-X-PROGRAM-DATE-TIME (the node stamps each segment with its first
// frame's arrival), or null while unknown.
export async function playHLS(video, url, on = {}) {
  const Hls = await loadHlsJs().catch(() => null);
  let failed = false;
  const fail = (what) => {
    if (failed) return;
    failed = true;
    if (on.error) on.error(what);
  };
  if (Hls && Hls.isSupported()) {
    // No worker: the page's Content-Security-Policy allows no blob: workers.
    const hls = new Hls({ lowLatencyMode: true, enableWorker: false, backBufferLength: 10 });
    let recovered = false;
    hls.on(Hls.Events.ERROR, (_, d) => {
      if (!d.fatal) return;
      if (d.type === Hls.ErrorTypes.MEDIA_ERROR && !recovered) {
        recovered = true;
        hls.recoverMediaError();
        return;
      }
      fail(`${d.type}: ${d.details}`);
    });
    hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}));
    hls.loadSource(url);
    hls.attachMedia(video);
    return {
      engine: 'hls.js',
      latencyMs: () => {
        const d = hls.playingDate;
        return d && !video.paused ? Date.now() - d.getTime() : null;
      },
      stop: () => {
        failed = true;
        hls.destroy();
        video.removeAttribute('src');
        video.load();
      },
    };
  }
  if (video.canPlayType('application/vnd.apple.mpegurl')) {
    const onError = () => fail('native: media error');
    video.addEventListener('error', onError);
    video.src = url;
    video.play().catch(() => {});
    return {
      engine: 'native',
      latencyMs: () => {
        // Safari: getStartDate is the PROGRAM-DATE-TIME of the media's start.
        const start = video.getStartDate ? video.getStartDate().getTime() : NaN;
        return Number.isFinite(start) && !video.paused ? Date.now() - (start + video.currentTime * 1000) : null;
      },
      stop: () => {
        failed = true;
        video.removeEventListener('error', onError);
        video.removeAttribute('src');
        video.load();
      },
    };
  }
  throw new PageError('hls_unsupported', 'This browser plays neither WebRTC nor HLS.');
}
