package node

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
)

// forceRelayJS makes every RTCPeerConnection of the pages of a tab use
// relay candidates only (iceTransportPolicy "relay"), as a browser whose
// network lets nothing but the TURN server through would end up doing.
const forceRelayJS = `(() => {
	const Native = window.RTCPeerConnection;
	window.RTCPeerConnection = function (cfg, ...rest) {
		return new Native({ ...(cfg || {}), iceTransportPolicy: 'relay' }, ...rest);
	};
	window.RTCPeerConnection.prototype = Native.prototype;
	Object.setPrototypeOf(window.RTCPeerConnection, Native);
})()`

// forceRelay installs forceRelayJS in tab for every page it loads from now on.
func forceRelay(t *testing.T, tab context.Context) {
	t.Helper()
	if _, err := chromedp.Call(tab, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: forceRelayJS}); err != nil {
		t.Fatal(err)
	}
}

// transportPage is the watch page's transport as window.haloStats() and its
// stats overlay give it.
type transportPage struct {
	FramesDecoded  int    `json:"framesDecoded"`
	Transport      string `json:"transport"`
	TransportShown string `json:"transportShown"`
}

// The watch page's Stats say how its media arrives: "UDP" for a browser
// that reaches the node directly, "TURN/<protocol>" for one allowed only
// relay candidates; the node's halo_viewer_transport counts each tab under
// the same transport.
func TestBrowser_WatchPageStatsShowTheTransport(t *testing.T) {
	n := turnNode(t, func(c *config.Config) { c.Metrics.Listen = "127.0.0.1:0" })
	b := newTURNBrowser(t)
	live, direct, relayed := b.ctx, b.tab("direct"), b.tab("relayed")
	const room = "transport-stats"
	capture := goLive(t, live, n, room, "")

	watch(t, direct, n, room, "")
	waitDecoded(t, direct, capture)
	p := waitPage(t, direct, "the direct tab's Stats to show its transport", haloStatsJS, func(p transportPage) bool { return p.TransportShown != "-" })
	if p.Transport != "UDP" || p.TransportShown != "UDP" {
		t.Fatalf("direct tab: Stats show transport %q (getStats: %q), want UDP", p.TransportShown, p.Transport)
	}
	testutil.Eventually(t, "the direct tab counted as udp", func() bool {
		return sameCounts(transportSeries(t, n, "halo_viewer_transport"), map[string]float64{"udp": 1})
	})

	forceRelay(t, relayed)
	watch(t, relayed, n, room, "")
	waitDecoded(t, relayed, capture)
	p = waitPage(t, relayed, "the relayed tab's Stats to show its transport", haloStatsJS, func(p transportPage) bool { return p.TransportShown != "-" })
	if !strings.HasPrefix(p.TransportShown, "TURN/") || p.TransportShown != p.Transport {
		t.Fatalf("relayed tab: Stats show transport %q (getStats: %q), want TURN/<protocol>", p.TransportShown, p.Transport)
	}
	typ := "turn_" + strings.ToLower(strings.TrimPrefix(p.Transport, "TURN/"))
	testutil.Eventually(t, "the relayed tab counted as "+typ, func() bool {
		return sameCounts(transportSeries(t, n, "halo_viewer_transport"), map[string]float64{"udp": 1, typ: 1})
	})
	t.Logf("direct tab: UDP; relayed tab: %s", p.TransportShown)
	assertNoPageProblems(t, b)
}
