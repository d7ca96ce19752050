package node

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	"github.com/pion/webrtc/v4"
)

// scrape reads the node's /metrics with Prometheus's own text parser.
func scrape(t *testing.T, n *testNode) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + n.metricsLn.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// gather reads the node's metrics from its registry, for a node started
// without a metrics listener.
func gather(t *testing.T, n *testNode) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := n.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]*dto.MetricFamily, len(fams))
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

// sample returns the value of the series name with labels (among others),
// summed over the series that match; a histogram gives its count. ok is
// false when no series matches.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) (v float64, ok bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		ok = true
		switch {
		case m.Counter != nil:
			v += m.Counter.GetValue()
		case m.Gauge != nil:
			v += m.Gauge.GetValue()
		case m.Histogram != nil:
			v += float64(m.Histogram.GetSampleCount())
		}
	}
	return v, ok
}

// Viewers' receiver reports become the node's loss, RTT and jitter
// histograms for audio and video; while media flows nobody freezes; when
// the broadcaster's connection is lost, each viewer of its video freezes
// once, for want of a source. Real Pion peers over loopback.
func TestQualityMetrics_ViewersReportsAndFreezes(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Metrics.Listen = "127.0.0.1:0" })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pub := n.publisher(ctx, "q", loadtest.PublisherConfig{VideoBitrate: 300_000})
	// One viewer over the WebSocket protocol, one over WHEP.
	if err := n.viewer(ctx, "q", "ws").WaitTracks(ctx, 2); err != nil {
		t.Fatal(err)
	}
	sock, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var whepPackets atomic.Int64
	whepViewerOn(t, n, "q", sock, &whepPackets)
	var last string
	defer func() {
		if t.Failed() {
			t.Log("last counts:", last)
		}
	}()
	testutil.Eventually(t, "both viewers' reports, and an RTT, for audio and video", func() bool {
		fams := scrape(t, n)
		last = ""
		for _, kind := range []string{"audio", "video"} {
			for _, h := range []string{"halo_viewer_loss_ratio", "halo_viewer_jitter_seconds", "halo_viewer_rtt_seconds"} {
				c, _ := sample(fams, h, "kind", kind)
				last += fmt.Sprintf(" %s{%s}=%v", h, kind, c)
			}
		}
		for _, kind := range []string{"audio", "video"} {
			for _, h := range []string{"halo_viewer_loss_ratio", "halo_viewer_jitter_seconds", "halo_viewer_rtt_seconds"} {
				want := 2.0 // a report from each viewer
				if h == "halo_viewer_rtt_seconds" {
					want = 1 // the WHEP viewer's (the load tester's carry no LSR)
				}
				if c, _ := sample(fams, h, "kind", kind); c < want {
					return false
				}
			}
		}
		return true
	})
	fams := scrape(t, n)
	for _, cause := range []string{"source", "delivery"} {
		if v, ok := sample(fams, "halo_viewer_freezes_total", "cause", cause); !ok || v != 0 {
			t.Errorf("halo_viewer_freezes_total{cause=%q} = %v (present %v) while media flows, want 0", cause, v, ok)
		}
	}
	if v, _ := sample(fams, "halo_forwarded_packets_total"); v < 100 {
		t.Errorf("halo_forwarded_packets_total = %v, want the packets forwarded", v)
	}
	if v := mustSample(t, fams, "halo_forwarded_bytes_total"); v < 10000 {
		t.Errorf("halo_forwarded_bytes_total = %v, want the bytes forwarded", v)
	}
	// The names deprecated for one release (CHANGELOG.md) are gone.
	for _, old := range []string{"halo_packets_forwarded_total", "halo_bytes_forwarded_total"} {
		if _, ok := fams[old]; ok {
			t.Errorf("%s is still served; it was removed after its release of deprecation", old)
		}
	}

	pub.DropConnection() // its tracks wait room.republish_grace for it
	testutil.Eventually(t, "each viewer's video freezes once, for want of a source", func() bool {
		v, _ := sample(scrape(t, n), "halo_viewer_freezes_total", "cause", "source")
		return v == 2
	})
	if v, _ := sample(scrape(t, n), "halo_viewer_freezes_total", "cause", "delivery"); v != 0 {
		t.Errorf("delivery freezes = %v, want 0: the source stopped, not the node", v)
	}
}

func mustSample(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	v, ok := sample(fams, name, labels...)
	if !ok {
		t.Fatalf("metric %s %v missing", name, labels)
	}
	return v
}

// blackholeConn is a viewer's UDP socket whose network can be cut: once cut,
// nothing it sends leaves and nothing it receives is delivered.
type blackholeConn struct {
	net.PacketConn
	cut atomic.Bool
}

func (c *blackholeConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.cut.Load() {
		return len(p), nil
	}
	return c.PacketConn.WriteTo(p, addr)
}

func (c *blackholeConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil || !c.cut.Load() {
			return n, addr, err
		}
	}
}

// whepViewerOn opens a WHEP session from a Pion client whose only socket is
// conn, and counts the media packets it reads.
func whepViewerOn(t *testing.T, n *testNode, room string, conn net.PacketConn, got *atomic.Int64) {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	mux := webrtc.NewICEUDPMux(nil, conn)
	t.Cleanup(func() { _ = mux.Close() })
	se.SetICEUDPMux(mux)
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
		// Reading the receiver's RTCP is what lets Pion's report
		// interceptor see the node's sender reports, so that its receiver
		// reports carry LSR/DLSR and the node can measure the RTT (a
		// browser always does this).
		go func() {
			buf := make([]byte, 1500)
			for {
				if _, _, err := recv.Read(buf); err != nil {
					return
				}
			}
		}()
		buf := make([]byte, 1500)
		for {
			if _, _, err := tr.Read(buf); err != nil {
				return
			}
			got.Add(1)
		}
	})
	c := &whipClient{pc: pc}
	if resp := c.post(t, n.base+"/whep/"+room, n.token(room, "whep-"+conn.LocalAddr().String(), false, true)); resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("WHEP POST: %d %s", resp.StatusCode, b)
	}
}

// A viewer whose network is gone from the start fails ICE in setup; one
// that was watching and whose network goes away fails it established. Each
// is counted once, by role and stage; the publisher, still connected, is
// not counted. (Waits for ICE's failure timeout, ~15 s.)
func TestQualityMetrics_ICEFailuresByStage(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the ICE failure timeout")
	}
	n := startNode(t, func(c *config.Config) { c.Metrics.Listen = "127.0.0.1:0" })
	whipPublish(t, n, "ice")
	listen := func() *blackholeConn {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return &blackholeConn{PacketConn: pc}
	}
	var watched, never atomic.Int64
	watching := listen()
	whepViewerOn(t, n, "ice", watching, &watched)
	testutil.Eventually(t, "the viewer receives media", func() bool { return watched.Load() > 10 })
	watching.cut.Store(true)

	cutOff := listen()
	cutOff.cut.Store(true)
	whepViewerOn(t, n, "ice", cutOff, &never)

	deadline := time.Now().Add(60 * time.Second)
	for {
		fams := scrape(t, n)
		setup := mustSample(t, fams, "halo_ice_failures_total", "role", "viewer", "stage", "setup")
		established := mustSample(t, fams, "halo_ice_failures_total", "role", "viewer", "stage", "established")
		if setup == 1 && established == 1 {
			if p := mustSample(t, fams, "halo_ice_failures_total", "role", "publisher"); p != 0 {
				t.Errorf("publisher ICE failures = %v, want 0", p)
			}
			break
		}
		if setup > 1 || established > 1 || time.Now().After(deadline) {
			t.Fatalf("viewer ICE failures: setup %v, established %v; want 1 and 1", setup, established)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if never.Load() != 0 {
		t.Errorf("the cut-off viewer received %d packets", never.Load())
	}
}
