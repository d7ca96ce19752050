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
// turns: server's certificate like a web site's. Nothing else differs but
// the extra options, if any.
func newTURNBrowser(t *testing.T, extra ...chromedp.ExecAllocatorOption) *browser {
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
	opts = append(opts, extra...)
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

// relayStats is what relayStatsJS's window.relayStats() returns.
type relayStats struct {
	FramesDecoded   int      `json:"framesDecoded"`
	FramesEncoded   int      `json:"framesEncoded"`
	ConnectionState string   `json:"connectionState"`
	CandidateType   string   `json:"candidateType"`
	RelayProtocol   string   `json:"relayProtocol"`
	URL             string   `json:"url"`
	Error           string   `json:"error"`
	URLs            []string `json:"urls"`
}

// relayStatsJS defines window.relayStats(): what window.relayPC() (the
// connection under test) decoded or encoded, and its selected local
// candidate.
const relayStatsJS = `
	window.relayStats = async () => {
		const out = { framesDecoded: 0, framesEncoded: 0, connectionState: '', candidateType: '', relayProtocol: '', url: '', error: window.relayError || '', urls: window.relayURLs };
		const pc = window.relayPC && window.relayPC();
		if (!pc) return out;
		out.connectionState = pc.connectionState;
		const stats = await pc.getStats();
		let pair;
		stats.forEach((r) => {
			if (r.type === 'inbound-rtp' && r.kind === 'video') out.framesDecoded += r.framesDecoded || 0;
			if (r.type === 'outbound-rtp' && r.kind === 'video') out.framesEncoded += r.framesEncoded || 0;
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
`

// relayServersJS sets servers to the node's TURN servers (with the
// credentials it gave in its Link headers: iceServersFor) whose URL starts
// with %[2]q, for room %[1]q and token %[3]q; m is halo-client.js.
const relayServersJS = `
	const m = await import('/halo-client.js');
	const room = %[1]q, token = %[3]q;
	const all = await m.iceServersFor('/whep/' + room, token, true);
	const servers = all.filter((s) => String(s.urls).startsWith(%[2]q));
	window.relayURLs = servers.map((s) => String(s.urls));
	const rtcConfig = { iceServers: servers, iceTransportPolicy: 'relay' };
	window.relayError = '';
	const fail = (e) => { window.relayError = String(e.code || '') + ' ' + (e.message || e); };
` + relayStatsJS

// relayWatchJS plays room over WHEP with halo-client.js in a page of the
// node, forced to relay (iceTransportPolicy "relay") through only the TURN
// servers of the node whose URL starts with %[2]q.
const relayWatchJS = `(async () => {` + relayServersJS + `
	const video = document.createElement('video');
	video.muted = true; video.autoplay = true; video.playsInline = true;
	document.body.appendChild(video);
	const stream = new MediaStream();
	m.whep('/whep/' + room, token, {
		rtcConfig,
		onTrack: (e) => { stream.addTrack(e.track); video.srcObject = stream; },
	}).then((s) => { window.relayPC = () => s.pc; }, fail);
	return true;
})()`

// relayWSWatchJS watches room over the WebSocket protocol (HaloClient),
// forced to relay like relayWatchJS.
const relayWSWatchJS = `(async () => {` + relayServersJS + `
	const video = document.createElement('video');
	video.muted = true; video.autoplay = true; video.playsInline = true;
	document.body.appendChild(video);
	const c = new m.HaloClient({ token, room, rtcConfig });
	c.addEventListener('track', (e) => { video.srcObject = e.detail.streams[0]; });
	window.relayPC = () => c.subscriber;
	c.connect().then(() => c.join()).catch(fail);
	return true;
})()`

// relayPublishJS publishes the fake camera over WHIP, forced to relay like
// relayWatchJS.
const relayPublishJS = `(async () => {` + relayServersJS + `
	const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
	m.whip('/whip/' + room, token, stream, { rtcConfig }).then((s) => { window.relayPC = () => s.pc; }, fail);
	return true;
})()`

// openRelayed opens the node's page in tab and runs js (one of the relay
// scripts) for room through the TURN URLs starting with prefix.
func openRelayed(t *testing.T, tab context.Context, n *testNode, js, room, prefix, token string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, browserDeadline)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(n.base+"/"), chromedp.WaitReady("body")); err != nil {
		t.Fatal(err)
	}
	var ok bool
	if err := evalJSON(tab, fmt.Sprintf(js, room, prefix, token), &ok); err != nil || !ok {
		t.Fatalf("start the relayed connection: %v", err)
	}
}

// waitRelayed waits until cond holds for the tab's relayStats, and checks
// that the connection went through the one TURN URL wantURL, as a relay
// candidate over protocol.
func waitRelayed(t *testing.T, tab context.Context, what, wantURL, protocol string, cond func(relayStats) bool) relayStats {
	t.Helper()
	st := waitPage(t, tab, what, `window.relayStats()`, func(s relayStats) bool {
		if s.Error != "" {
			t.Fatalf("%s: %s", what, s.Error)
		}
		return cond(s) && s.CandidateType != ""
	})
	if len(st.URLs) != 1 || st.URLs[0] != wantURL {
		t.Fatalf("the page used TURN URLs %v, want only %s", st.URLs, wantURL)
	}
	if st.CandidateType != "relay" || st.RelayProtocol != protocol {
		t.Fatalf("selected local candidate %s over %q (url %q), want relay over %s", st.CandidateType, st.RelayProtocol, st.URL, protocol)
	}
	return st
}

// The first check: Chromium allowed only relay candidates and given
// only the turns: URL the node issued watches a broadcast over WHEP, and
// decodes it; its selected candidate is a relay reached over TLS.
func TestTURN_ChromiumWatchesOverWHEPThroughTURNOverTLSOnly(t *testing.T) {
	n := turnNode(t, nil)
	b := newTURNBrowser(t)
	live, viewer := b.ctx, b.tab("relay-viewer")
	const room = "tlsrelay"
	goLive(t, live, n, room, "")
	turns := fmt.Sprintf("turns:127.0.0.1:%d?transport=tcp", n.cfg.Turn.TLSPort)
	openRelayed(t, viewer, n, relayWatchJS, room, "turns:", n.token(room, "relay-fan", false, true))
	st := waitRelayed(t, viewer, "frames decoded through TURN over TLS (WHEP)", turns, "tls",
		func(s relayStats) bool { return s.FramesDecoded > 30 })
	if a := n.gauge(t, "halo_turn_allocations", "", ""); a < 1 {
		t.Fatalf("halo_turn_allocations = %v while Chromium relays", a)
	}
	t.Logf("decoded %d frames through %s (relay over %s)", st.FramesDecoded, st.URL, st.RelayProtocol)
	assertNoPageProblems(t, b)
}

// The same browser publishes over WHIP through TURN over TLS only, and
// another watches over the WebSocket protocol (HaloClient) through TURN
// over TLS only: a Pion viewer beside them receives the broadcast, and the
// relayed tab decodes it.
func TestTURN_ChromiumPublishesOverWHIPAndWatchesOverWebSocketThroughTURNOverTLSOnly(t *testing.T) {
	n := turnNode(t, nil)
	b := newTURNBrowser(t)
	pub, viewer := b.ctx, b.tab("relay-ws-viewer")
	const room = "tlsboth"
	turns := fmt.Sprintf("turns:127.0.0.1:%d?transport=tcp", n.cfg.Turn.TLSPort)
	openRelayed(t, pub, n, relayPublishJS, room, "turns:", n.token(room, "relay-star", true, false))
	waitRelayed(t, pub, "frames encoded and sent through TURN over TLS (WHIP)", turns, "tls",
		func(s relayStats) bool { return s.FramesEncoded > 30 })

	ctx, cancel := context.WithTimeout(context.Background(), browserDeadline)
	defer cancel()
	direct := n.viewer(ctx, room, "direct-fan")
	if err := direct.WaitTracks(ctx, 2); err != nil {
		t.Fatalf("a direct viewer got no media from the relayed publisher: %v", err)
	}

	openRelayed(t, viewer, n, relayWSWatchJS, room, "turns:", n.token(room, "relay-ws-fan", false, true))
	st := waitRelayed(t, viewer, "frames decoded through TURN over TLS (WebSocket)", turns, "tls",
		func(s relayStats) bool { return s.FramesDecoded > 30 })
	t.Logf("WHIP publisher and WebSocket viewer relayed over TLS; viewer decoded %d frames", st.FramesDecoded)
	assertNoPageProblems(t, b)
}
