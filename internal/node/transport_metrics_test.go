package node

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	"github.com/pion/webrtc/v4"
	dto "github.com/prometheus/client_model/go"
)

// transportViewer is a Pion WHEP viewer counting the packets it receives.
type transportViewer struct {
	c       *whipClient
	packets atomic.Int64
}

// watchOver starts a WHEP viewer of room that reaches the node only over
// mode: "udp" (host candidates over UDP), "tcp" (ICE-TCP: the viewer
// gathers TCP candidates only) or a load tester relay mode through the
// node's TURN server.
func watchOver(t *testing.T, n *testNode, room, mode string) *transportViewer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Wait)
	defer cancel()
	token := n.token(room, "viewer-"+mode, false, true)
	se := webrtc.SettingEngine{}
	cfg := webrtc.Configuration{}
	switch mode {
	case "udp":
		se.SetIncludeLoopbackCandidate(true)
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	case "tcp":
		se.SetIncludeLoopbackCandidate(true)
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	default:
		m := loadtest.ICEMode(mode)
		servers, err := loadtest.RelayICEServers(ctx, n.base+"/whep/"+room, token, m)
		if err != nil || len(servers) != 1 {
			t.Fatalf("RelayICEServers(%s) = %v, %v", mode, servers, err)
		}
		loadtest.ApplyICEMode(&se, m, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test's self-signed TURN certificate
		cfg = loadtest.RelayConfiguration(servers)
	}
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	v := &transportViewer{c: &whipClient{pc: pc}}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		buf := make([]byte, 1500)
		for {
			if _, _, err := tr.Read(buf); err != nil {
				return
			}
			v.packets.Add(1)
		}
	})
	if resp := v.c.post(t, n.base+"/whep/"+room, token); resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("WHEP POST over %s: %d %s", mode, resp.StatusCode, b)
	}
	testutil.Eventually(t, "media over "+mode, func() bool { return v.packets.Load() > 50 })
	return v
}

// end ends the viewer's WHEP session (DELETE), as a player does on leaving.
func (v *transportViewer) end(t *testing.T, n *testNode) {
	t.Helper()
	url := v.c.location
	if strings.HasPrefix(url, "/") {
		url = n.base + url
	}
	if resp := doHTTP(t, "DELETE", url, "", "", "", nil); resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE %s: %d", url, resp.StatusCode)
	}
	_ = v.c.pc.Close()
}

// transportSeries reads halo_viewer_transport or halo_publisher_transport
// from a scrape of /metrics: the value per type.
func transportSeries(t *testing.T, n *testNode, name string) map[string]float64 {
	t.Helper()
	f := scrape(t, n)[name]
	if f == nil {
		t.Fatalf("/metrics has no %s", name)
	}
	out := map[string]float64{}
	for _, m := range f.GetMetric() {
		out[labelOf(m, "type")] = m.GetGauge().GetValue()
	}
	return out
}

func labelOf(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// sameCounts reports whether got has want's counts and 0 for every other
// transport the metric names.
func sameCounts(got, want map[string]float64) bool {
	for _, typ := range []string{"udp", "tcp", "turn_udp", "turn_tcp", "turn_tls"} {
		if _, ok := got[typ]; !ok || got[typ] != want[typ] {
			return false
		}
	}
	return len(got) == 5
}

// An operator sees in /metrics how each viewer and broadcaster reaches the
// node: a WHIP broadcaster over UDP, and WHEP viewers over UDP (handed over
// from Pion, still counted as udp), over ICE-TCP and through the embedded
// TURN server over UDP, TCP and TLS, each counted once under its own
// transport; a viewer that leaves stops counting.
func TestTransport_MetricsCountViewersAndBroadcastersByTransport(t *testing.T) {
	n := turnNode(t, func(c *config.Config) {
		c.SFU.TCPPort = testutil.FreePort(t)
		c.Metrics.Listen = "127.0.0.1:0"
	})
	const room = "by-transport"
	if got := transportSeries(t, n, "halo_viewer_transport"); !sameCounts(got, nil) {
		t.Fatalf("halo_viewer_transport before anyone connects = %v, want every type at 0", got)
	}
	whipPublish(t, n, room)
	testutil.Eventually(t, "the broadcaster counted over udp", func() bool {
		return sameCounts(transportSeries(t, n, "halo_publisher_transport"), map[string]float64{"udp": 1})
	})

	want := map[string]float64{}
	viewers := map[string]*transportViewer{}
	for _, c := range []struct{ mode, typ string }{
		{"udp", "udp"}, {"tcp", "tcp"},
		{string(loadtest.ICERelayUDP), "turn_udp"}, {string(loadtest.ICERelayTCP), "turn_tcp"}, {string(loadtest.ICERelayTLS), "turn_tls"},
	} {
		viewers[c.typ] = watchOver(t, n, room, c.mode)
		want[c.typ]++
		testutil.Eventually(t, "halo_viewer_transport counts the "+c.mode+" viewer as "+c.typ, func() bool {
			return sameCounts(transportSeries(t, n, "halo_viewer_transport"), want)
		})
	}
	// The UDP viewer's connection is handed over from Pion; it still counts.
	testutil.Eventually(t, "the UDP viewer handed over", func() bool { return n.engine.Stats().HandedOver >= 1 })
	if got := transportSeries(t, n, "halo_viewer_transport"); !sameCounts(got, want) {
		t.Fatalf("after the hand-over halo_viewer_transport = %v, want %v", got, want)
	}
	if got := transportSeries(t, n, "halo_publisher_transport"); !sameCounts(got, map[string]float64{"udp": 1}) {
		t.Fatalf("halo_publisher_transport = %v, want one udp broadcaster (viewers are not broadcasters)", got)
	}

	for _, typ := range []string{"tcp", "turn_tls", "udp"} {
		viewers[typ].end(t, n)
		want[typ]--
		testutil.Eventually(t, "the "+typ+" viewer that left no longer counted", func() bool {
			return sameCounts(transportSeries(t, n, "halo_viewer_transport"), want)
		})
	}
}
