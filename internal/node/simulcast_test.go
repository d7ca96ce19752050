package node

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// simulcastPublisher is a Pion WHIP client that sends one VP8 track in
// three layers (RIDs q, h, f), each packet marked with its layer, with a
// keyframe every 10 frames; stopHigh stops the f layer, as a browser
// under congestion does.
type simulcastPublisher struct {
	*whipClient
	stopHigh atomic.Bool
}

func publishSimulcast(t *testing.T, n *testNode, room string) *simulcastPublisher {
	t.Helper()
	// Sizes like real layers: several times more per layer.
	return publishSimulcastPackets(t, n, room, [3][]int{{120}, {400}, {1100}})
}

// publishSimulcastPackets is publishSimulcast with the packet sizes of one
// frame of each layer (50 frames a second).
func publishSimulcastPackets(t *testing.T, n *testNode, room string, frames [3][]int) *simulcastPublisher {
	t.Helper()
	return publishSimulcastCodec(t, n, room, webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, frames)
}

// h264Baseline is the codec of the H.264 simulcast publisher.
var h264Baseline = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264,
	SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}

// publishSimulcastCodec is publishSimulcastPackets in codec (VP8 or H.264:
// a keyframe is then an SPS and PPS in a STAP-A, then IDR slices).
func publishSimulcastCodec(t *testing.T, n *testNode, room string, codec webrtc.RTPCodecCapability, frames [3][]int) *simulcastPublisher {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	for _, uri := range []string{sdp.SDESMidURI, sdp.SDESRTPStreamIDURI, sdp.SDESRepairRTPStreamIDURI} {
		if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: uri}, webrtc.RTPCodecTypeVideo); err != nil {
			t.Fatal(err)
		}
	}
	pc := newTestPCWith(t, me)
	h264 := codec.MimeType == webrtc.MimeTypeH264
	var layers []*webrtc.TrackLocalStaticRTP
	for _, rid := range []string{"q", "h", "f"} {
		tr, err := webrtc.NewTrackLocalStaticRTP(codec, "cam", "sim", webrtc.WithRTPStreamID(rid))
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, tr)
	}
	tc, err := pc.AddTransceiverFromTrack(layers[0], webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers[1:] {
		if err := tc.Sender().AddEncoding(l); err != nil {
			t.Fatal(err)
		}
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := tc.Sender().Read(buf); err != nil {
				return
			}
		}
	}()
	p := &simulcastPublisher{whipClient: &whipClient{pc: pc, stop: make(chan struct{}), done: make(chan struct{})}}
	resp := p.post(t, n.base+"/whip/"+room, n.token(room, "caster", true, false))
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("simulcast WHIP POST: %d %s", resp.StatusCode, b)
	}
	// Pion's sender does not stamp MID and RID itself: a browser does.
	var midID, ridID uint8
	for _, e := range tc.Sender().GetParameters().HeaderExtensions {
		switch e.URI {
		case sdp.SDESMidURI:
			midID = uint8(e.ID)
		case sdp.SDESRTPStreamIDURI:
			ridID = uint8(e.ID)
		}
	}
	if midID == 0 || ridID == 0 {
		t.Fatalf("the server's answer negotiates no MID/RID extensions: %+v", tc.Sender().GetParameters().HeaderExtensions)
	}
	mid := tc.Mid()
	go func() {
		defer close(p.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		var seq [3]uint16
		for frame := uint32(0); ; frame++ {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			for i, l := range layers {
				if i == 2 && p.stopHigh.Load() {
					continue
				}
				sizes := frames[i]
				if h264 && frame%10 == 0 {
					sizes = append([]int{64}, sizes...) // the STAP-A with SPS and PPS
				}
				for k, size := range sizes {
					payload := make([]byte, size)
					switch {
					case h264 && frame%10 == 0 && k == 0:
						sps := []byte{0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8, 0x06, 0xd0, 0xa1, 0x35}
						stap := append([]byte{0x78, 0x00, byte(len(sps))}, sps...)
						copy(payload, append(stap, 0x00, 0x04, 0x68, 0xce, 0x3c, 0x80))
					case h264 && frame%10 == 0:
						payload[0] = 0x65 // IDR slice
					case h264:
						payload[0] = 0x41 // non-IDR slice
					case k == 0:
						payload[0] = 0x10 // S=1, partition 0
						if frame%10 != 0 {
							payload[1] = 0x01 // inter frame
						} else {
							copy(payload[1:], []byte{0x50, 0x01, 0x00, 0x9d, 0x01, 0x2a})
						}
					}
					payload[len(payload)-1] = byte(i) // the layer, for the viewer to tell
					pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq[i], Timestamp: frame * 1800, Marker: k == len(sizes)-1}, Payload: payload}
					seq[i]++
					_ = pkt.Header.SetExtension(midID, []byte(mid))
					_ = pkt.Header.SetExtension(ridID, []byte(l.RID()))
					_ = l.WriteRTP(pkt)
				}
			}
		}
	}()
	t.Cleanup(p.close)
	return p
}

// layerRecorder is a WHEP viewer that notes, per video packet, its
// sequence number and the layer it came from.
type layerRecorder struct {
	mu     sync.Mutex
	seqs   []uint16
	layers []byte
}

func (r *layerRecorder) last(n int) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]byte(nil), r.layers[max(0, len(r.layers)-n):]...)
}

func (r *layerRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.layers)
}

func (r *layerRecorder) gaps() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := 0
	for i := 1; i < len(r.seqs); i++ {
		if d := r.seqs[i] - r.seqs[i-1]; d != 1 {
			g++
		}
	}
	return g
}

func whepLayers(t *testing.T, n *testNode, room, query string) *layerRecorder {
	t.Helper()
	pc := newTestPC(t)
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	rec := &layerRecorder{}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if len(p.Payload) > 20 {
				rec.mu.Lock()
				rec.seqs = append(rec.seqs, p.SequenceNumber)
				rec.layers = append(rec.layers, p.Payload[len(p.Payload)-1])
				rec.mu.Unlock()
			}
		}
	})
	c := &whipClient{pc: pc}
	if resp := c.post(t, n.base+"/whep/"+room+query, n.token(room, "viewer", false, true)); resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("WHEP POST %s: %d %s", query, resp.StatusCode, b)
	}
	return rec
}

func allLayer(b []byte, layer byte) bool {
	for _, x := range b {
		if x != layer {
			return false
		}
	}
	return len(b) > 0
}

// A simulcast WHIP publisher (three RIDs): a WHEP viewer gets the best
// layer, one with ?layer=low the lowest; when the publisher stops its top
// layer, the viewer moves down to the middle one without a sequence gap,
// and back up when it returns.
func TestSimulcast_WHIPLayersReachViewersByCap(t *testing.T) {
	n := startNode(t, nil)
	pub := publishSimulcast(t, n, "sim")
	testutil.Eventually(t, "the simulcast track is published with its layers", func() bool {
		r := n.rooms.Room("sim")
		if r == nil {
			return false
		}
		ts := r.Tracks()
		return len(ts) == 1 && len(ts[0].Layers) == 3
	})
	high := whepLayers(t, n, "sim", "")
	low := whepLayers(t, n, "sim", "?layer=low")
	medium := whepLayers(t, n, "sim", "?layer=medium")
	testutil.Eventually(t, "each viewer on its layer", func() bool {
		return allLayer(high.last(20), 2) && allLayer(low.last(20), 0) && allLayer(medium.last(20), 1)
	})
	if s := n.engine.Stats(); s.Tracks != 1 {
		t.Errorf("engine counts %d tracks, want the one simulcast track", s.Tracks)
	}

	pub.stopHigh.Store(true)
	testutil.Eventually(t, "the uncapped viewer falls back to the middle layer", func() bool { return allLayer(high.last(20), 1) })
	pub.stopHigh.Store(false)
	testutil.Eventually(t, "the uncapped viewer returns to the top layer", func() bool { return allLayer(high.last(20), 2) })
	for name, r := range map[string]*layerRecorder{"uncapped": high, "low": low, "medium": medium} {
		if g := r.gaps(); g != 0 {
			t.Errorf("the %s viewer's sequence numbers jump %d times", name, g)
		}
	}
	if resp := doHTTP(t, "POST", n.base+"/whep/sim?layer=ultra", n.token("sim", "v2", false, true), "application/sdp", "v=0\r\n", nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("WHEP with ?layer=ultra: %d, want 400", resp.StatusCode)
	}
}

// Simulcast across a relay: a WHIP simulcast broadcast on a is watched on
// b, where one viewer is capped low and one is not. The relay carries each
// layer once, and each viewer on b gets its own layer.
func TestSimulcast_LayersAcrossARelay(t *testing.T) {
	r := testutil.StartRedis(t)
	secret := strings.Repeat("s1", 20)
	a := startClusterNode(t, r, "node-a", "eu", secret)
	b := startClusterNode(t, r, "node-b", "in", secret)
	publishSimulcast(t, a, "sim-relay")
	testutil.Eventually(t, "the simulcast track on a", func() bool {
		rm := a.rooms.Room("sim-relay")
		return rm != nil && len(rm.Tracks()) == 1 && len(rm.Tracks()[0].Layers) == 3
	})
	high := whepLayers(t, b, "sim-relay", "")
	low := whepLayers(t, b, "sim-relay", "?layer=low")
	testutil.Eventually(t, "each viewer on b on its layer", func() bool {
		return allLayer(high.last(20), 2) && allLayer(low.last(20), 0)
	})
	if s := a.engine.Stats(); s.RelayTracksOut != 3 {
		t.Errorf("a relays %d track copies to b, want the 3 layers once each", s.RelayTracksOut)
	}
	if s := b.engine.Stats(); s.Tracks != 1 {
		t.Errorf("b counts %d tracks, want the one relayed simulcast track", s.Tracks)
	}
	for name, rec := range map[string]*layerRecorder{"uncapped": high, "low": low} {
		if g := rec.gaps(); g != 0 {
			t.Errorf("the %s viewer on b: sequence numbers jump %d times", name, g)
		}
	}
}

// H.264 simulcast: the same per-viewer layers as VP8.
func TestSimulcast_H264Layers(t *testing.T) {
	n := startNode(t, nil)
	publishSimulcastCodec(t, n, "sim264", h264Baseline, [3][]int{{120}, {400}, {1100}})
	testutil.Eventually(t, "the H.264 simulcast track", func() bool {
		r := n.rooms.Room("sim264")
		return r != nil && len(r.Tracks()) == 1 && len(r.Tracks()[0].Layers) == 3 && r.Tracks()[0].Codec == webrtc.MimeTypeH264
	})
	high := whepLayers(t, n, "sim264", "")
	low := whepLayers(t, n, "sim264", "?layer=low")
	testutil.Eventually(t, "each H.264 viewer on its layer", func() bool {
		return allLayer(high.last(20), 2) && allLayer(low.last(20), 0)
	})
	for name, r := range map[string]*layerRecorder{"uncapped": high, "low": low} {
		if g := r.gaps(); g != 0 {
			t.Errorf("the %s H.264 viewer's sequence numbers jump %d times", name, g)
		}
	}
}
