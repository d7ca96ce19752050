package node

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// newTURNBrowser is newBrowser with --ignore-certificate-errors: the TURN
// server's certificate is self-signed for the test, and Chromium checks a
// turns: server's certificate like a web site's. Nothing else differs.
func newTURNBrowser(t *testing.T) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("%s is missing (make deps installs it); CI fails here instead", chromiumPath)
		}
		t.Fatalf("%s is missing in CI: %v", chromiumPath, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("mute-audio", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	b := &browser{t: t, ctx: ctx}
	t.Cleanup(func() {
		b.mu.Lock()
		b.done = true
		logs := b.logs
		b.mu.Unlock()
		if t.Failed() || os.Getenv("HALO_BROWSER_LOG") != "" {
			for _, l := range logs {
				t.Logf("browser: %s", l)
			}
		}
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		_ = chromedp.Cancel(cctx)
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	b.listen(ctx, "tab0")
	return b
}

// relayStats is what relayWatchJS's window.relayStats() returns.
type relayStats struct {
	FramesDecoded   int      `json:"framesDecoded"`
	ConnectionState string   `json:"connectionState"`
	CandidateType   string   `json:"candidateType"`
	RelayProtocol   string   `json:"relayProtocol"`
	URL             string   `json:"url"`
	Error           string   `json:"error"`
	URLs            []string `json:"urls"`
}

// relayWatchJS plays room over WHEP with halo-client.js in a page of the
// node, forced to relay (iceTransportPolicy "relay") through only the TURN
// servers of the node whose URL starts with %[2]q, with the credentials the
// node gave in its Link headers (iceServersFor).
const relayWatchJS = `(async () => {
	const m = await import('/halo-client.js');
	const endpoint = '/whep/' + %[1]q;
	const token = %[3]q;
	const all = await m.iceServersFor(endpoint, token, true);
	const servers = all.filter((s) => String(s.urls).startsWith(%[2]q));
	window.relayURLs = servers.map((s) => String(s.urls));
	const video = document.createElement('video');
	video.muted = true; video.autoplay = true; video.playsInline = true;
	document.body.appendChild(video);
	const stream = new MediaStream();
	window.relayError = '';
	m.whep(endpoint, token, {
		rtcConfig: { iceServers: servers, iceTransportPolicy: 'relay' },
		onTrack: (e) => { stream.addTrack(e.track); video.srcObject = stream; },
	}).then((s) => { window.relaySession = s; }, (e) => { window.relayError = String(e.code || '') + ' ' + e.message; });
	window.relayStats = async () => {
		const out = { framesDecoded: 0, connectionState: '', candidateType: '', relayProtocol: '', url: '', error: window.relayError, urls: window.relayURLs };
		const s = window.relaySession;
		if (!s) return out;
		out.connectionState = s.pc.connectionState;
		const stats = await s.pc.getStats();
		let pair;
		stats.forEach((r) => {
			if (r.type === 'inbound-rtp' && r.kind === 'video') out.framesDecoded = r.framesDecoded || 0;
			if (r.type === 'transport' && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId);
		});
		const local = pair && stats.get(pair.localCandidateId);
		if (local) {
			out.candidateType = local.candidateType || '';
			out.relayProtocol = local.relayProtocol || '';
			out.url = local.url || '';
		}
		return out;
	};
	return true;
})()`

// The first check: Chromium allowed only relay candidates and given
// only the turns: URL the node issued watches a broadcast over WHEP, and
// decodes it; its selected candidate is a relay reached over TLS.
func TestTURN_ChromiumWatchesOverWHEPThroughTURNOverTLSOnly(t *testing.T) {
	n := turnNode(t, nil)
	b := newTURNBrowser(t)
	live, viewer := b.ctx, b.tab("relay-viewer")
	const room = "tlsrelay"
	goLive(t, live, n, room, "")

	ctx, cancel := context.WithTimeout(viewer, browserDeadline)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(n.base+"/"), chromedp.WaitReady("body")); err != nil {
		t.Fatal(err)
	}
	var ok bool
	js := fmt.Sprintf(relayWatchJS, room, "turns:", n.token(room, "relay-fan", false, true))
	if err := evalJSON(viewer, js, &ok); err != nil || !ok {
		t.Fatalf("start the relayed viewer: %v", err)
	}
	st := waitPage(t, viewer, "frames decoded through TURN over TLS", `window.relayStats()`, func(s relayStats) bool {
		if s.Error != "" {
			t.Fatalf("WHEP through TURN/TLS failed: %s", s.Error)
		}
		return s.FramesDecoded > 30 && s.CandidateType != ""
	})
	if len(st.URLs) != 1 || st.URLs[0] != fmt.Sprintf("turns:127.0.0.1:%d?transport=tcp", n.cfg.Turn.TLSPort) {
		t.Fatalf("the page used TURN URLs %v, want only the node's turns: URL", st.URLs)
	}
	if st.CandidateType != "relay" || st.RelayProtocol != "tls" {
		t.Fatalf("selected local candidate %s over %q (url %q), want relay over tls", st.CandidateType, st.RelayProtocol, st.URL)
	}
	if a := n.gauge(t, "halo_turn_allocations", "", ""); a < 1 {
		t.Fatalf("halo_turn_allocations = %v while Chromium relays", a)
	}
	t.Logf("decoded %d frames through %s (relay over %s)", st.FramesDecoded, st.URL, st.RelayProtocol)
	assertNoPageProblems(t, b)
}
