package sfu

import (
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// simulcastRig is three layers of one VP8 track, fed by the test, with a
// layerSet whose monitor the test runs by hand.
type simulcastRig struct {
	g      *layerSet
	layers [3]*Track // low, medium, high
	seq    [3]uint16
	ts     [3]uint32
}

func newSimulcastRig(t *testing.T) *simulcastRig {
	e := newTestEngine()
	codec := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	g := &layerSet{e: e, rids: []string{"q", "h", "f"}, stop: make(chan struct{}), done: make(chan struct{})}
	close(g.done) // no monitor goroutine: the test samples
	empty := []*Track{}
	g.ranked.Store(&empty)
	r := &simulcastRig{g: g}
	for i, rid := range g.rids {
		tr := newTrackFor(e, TrackInfo{ID: "t", Kind: webrtc.RTPCodecTypeVideo, MimeType: codec.MimeType, RID: rid, Layers: g.rids}, codec, uint32(10+i), func(uint32) {})
		g.add(tr)
		r.layers[i] = tr
		r.seq[i] = uint16(1000 * (i + 1))
		r.ts[i] = uint32(7777 * (i + 1))
	}
	return r
}

// frame sends one frame (one packet) of layer i; higher layers send more
// bytes, as real ones do (several times more per layer).
func (r *simulcastRig) frame(i int, key bool) {
	pkt := vp8Packet(r.seq[i], r.ts[i], key)[:[]int{150, 500, 1200}[i]]
	var h rtp.Header
	r.layers[i].ingest(pkt, &h)
	r.layers[i].pump()
	r.seq[i]++
	r.ts[i] += 3000
}

// tick lets the layer set see which layers are active and move viewers.
func (r *simulcastRig) tick(now time.Time) {
	r.g.sample(now)
	r.g.rebalance(now)
}

func viewerOf(tr *Track) (*DownTrack, *recordingWriter) {
	w := &recordingWriter{}
	d := newDownTrack(tr)
	d.bind.Store(&binding{ssrc: 7, pt: 96, writer: w})
	tr.addDown(d)
	return d, w
}

// A viewer capped low gets the low layer; raised to high it moves at the
// high layer's next keyframe, with continuous sequence numbers; when the
// high layer stops, the viewer falls back at once to the best layer left.
func TestSimulcast_ViewerMovesBetweenLayersOnKeyframes(t *testing.T) {
	r := newSimulcastRig(t)
	now := testNow
	for i := range 3 {
		r.frame(i, true)
	}
	r.tick(now)
	if got := r.g.pick(LayerHigh); got != r.layers[2] {
		t.Fatalf("high picks %q, want f", got.info.RID)
	}
	if got := r.g.pick(LayerLow); got != r.layers[0] {
		t.Fatalf("low picks %q, want q", got.info.RID)
	}
	if got := r.g.pick(LayerMedium); got != r.layers[1] {
		t.Fatalf("medium picks %q, want h", got.info.RID)
	}
	d, w := viewerOf(r.g.pick(LayerLow))
	d.layerCap.Store(LayerLow)
	for range 5 {
		for i := range 3 {
			r.frame(i, false)
		}
	}
	if n := len(w.packets()); n != 1+5 {
		t.Fatalf("capped low, the viewer got %d packets, want the low layer's cached keyframe and 5", n)
	}
	d.SetLayer(LayerHigh)
	for range 3 {
		for i := range 3 {
			r.frame(i, false) // no keyframe of the high layer yet: still low
		}
	}
	if d.Track() != r.layers[0] {
		t.Fatal("moved before the high layer's keyframe")
	}
	// Waiting for the high layer's keyframe it is on both layers' lists,
	// and still one viewer's copy (halo_down_tracks).
	if n := r.g.e.Stats().DownTracks; n != 1 {
		t.Fatalf("a viewer waiting for a layer's keyframe counts as %d down-tracks", n)
	}
	r.frame(2, true)
	r.frame(2, false)
	r.frame(0, false) // the low layer no longer reaches the viewer
	if d.Track() != r.layers[2] {
		t.Fatalf("on layer %q after the high keyframe, want f", d.Track().info.RID)
	}
	pkts := w.packets()
	if len(pkts) != 1+5+3+2 {
		t.Fatalf("viewer got %d packets, want 9 low then 2 high", len(pkts))
	}
	for i := 1; i < len(pkts); i++ {
		if pkts[i].seq != pkts[i-1].seq+1 {
			t.Fatalf("sequence gap at packet %d: %d after %d", i, pkts[i].seq, pkts[i-1].seq)
		}
		if int32(pkts[i].ts-pkts[i-1].ts) <= 0 {
			t.Fatalf("timestamp did not advance at packet %d", i)
		}
	}
	if pkts[9].head[0] != 0x10 || pkts[9].head[1]&0x01 != 0 {
		t.Fatal("the first high packet is not its keyframe")
	}
	if r.layers[0].ViewerCount() != 0 || r.layers[2].ViewerCount() != 1 {
		t.Fatalf("viewers per layer: low %d high %d", r.layers[0].ViewerCount(), r.layers[2].ViewerCount())
	}
	if n := r.g.e.Stats().DownTracks; n != 1 {
		t.Fatalf("after the switch, %d down-tracks", n)
	}

	// The publisher stops sending its high layer (its own congestion): the
	// viewer moves to medium at once, from medium's cached keyframe.
	for k := range 6 {
		now = now.Add(layerTick)
		r.frame(0, false)
		r.frame(1, k == 0)
		r.tick(now)
	}
	if d.Track() != r.layers[1] {
		t.Fatalf("after the high layer stopped the viewer is on %q, want h", d.Track().info.RID)
	}
	before := len(w.packets())
	r.frame(1, false)
	if len(w.packets()) <= before {
		t.Fatal("the viewer receives nothing from the medium layer")
	}
	pkts = w.packets()
	for i := 1; i < len(pkts); i++ {
		if pkts[i].seq != pkts[i-1].seq+1 {
			t.Fatalf("sequence gap at packet %d after the fall-back", i)
		}
	}
	// The high layer comes back: the viewer returns at its keyframe.
	now = now.Add(layerTick)
	r.frame(2, false)
	r.tick(now)
	r.frame(2, true)
	if d.Track() != r.layers[2] {
		t.Fatalf("after the high layer returned the viewer is on %q, want f", d.Track().info.RID)
	}
}

func TestParseLayer(t *testing.T) {
	for in, want := range map[string]int{"low": LayerLow, "Medium": LayerMedium, "high": LayerHigh} {
		if got, ok := ParseLayer(in); !ok || got != want {
			t.Errorf("ParseLayer(%q) = %d %v", in, got, ok)
		}
	}
	if _, ok := ParseLayer("ultra"); ok {
		t.Error("ParseLayer accepted ultra")
	}
}
