package sfu

import (
	"sync/atomic"
	"testing"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

func (r *testRig) feed(seq uint16, key bool) {
	var h rtp.Header
	r.track.ingest(vp8Packet(seq, uint32(seq)*3000, key), &h)
	r.track.pump()
}

func TestDownTrack_LateJoinerGetsThePictureSinceTheKeyframe(t *testing.T) {
	r := newTestRig(t)
	early := r.addViewer()
	for s := uint16(65530); s != 5; s++ { // across the sequence wrap
		r.feed(s, s == 65532)
	}
	late := r.addViewer()
	r.feed(5, false)
	if got := r.sent(early); len(got) != 10 || got[0] != 65532 {
		t.Fatalf("early viewer got %v, want from the keyframe 65532 on", got)
	}
	got := r.sent(late)
	if len(got) != 10 || got[0] != 65532 || got[9] != 5 {
		t.Fatalf("late viewer got %v, want 65532..5", got)
	}
}

func TestDownTrack_WaitsForAKeyframeAndAsksOnceForManyViewers(t *testing.T) {
	r := newTestRig(t)
	var plis atomic.Int32
	r.track.requestKeyframe = func(uint32) { plis.Add(1) }
	viewers := []*DownTrack{r.addViewer(), r.addViewer(), r.addViewer()}
	r.feed(10, false) // no keyframe seen yet
	r.feed(11, false)
	for _, v := range viewers {
		if got := r.sent(v); len(got) != 0 {
			t.Fatalf("viewer got %v before any keyframe", got)
		}
	}
	if n := plis.Load(); n != 1 {
		t.Fatalf("%d keyframe requests sent upstream, want 1 (merged)", n)
	}
	r.feed(12, true)
	for _, v := range viewers {
		if got := r.sent(v); len(got) != 1 || got[0] != 12 {
			t.Fatalf("viewer got %v, want to start on keyframe 12", got)
		}
	}
}

func TestDownTrack_NACKsAreAnsweredFromTheSharedCache(t *testing.T) {
	r := newTestRig(t)
	a, b := r.addViewer(), r.addViewer()
	for s := uint16(100); s < 110; s++ {
		r.feed(s, s == 100)
	}
	before := len(r.sent(a))
	// Viewer a lost source packets 103 and 104: it names them in its own
	// sequence space.
	out := 103 + a.anc.seqOffset
	a.handleNACK(&rtcp.TransportLayerNack{Nacks: []rtcp.NackPair{{PacketID: out, LostPackets: 0b1}}})
	got := r.sent(a)[before:]
	if len(got) != 2 || got[0] != 103 || got[1] != 104 {
		t.Fatalf("retransmitted %v, want 103 104", got)
	}
	if len(r.sent(b)) != 10 {
		t.Fatal("the other viewer was sent retransmissions too")
	}
	st := &r.track.engine.stats
	if st.nacksReceived.Load() != 2 || st.nacksAnswered.Load() != 2 {
		t.Fatalf("nack counters %d/%d", st.nacksReceived.Load(), st.nacksAnswered.Load())
	}
	// A packet that left the cache cannot be answered.
	for s := uint16(110); s < 110+300; s++ {
		r.feed(s, false)
	}
	a.handleNACK(&rtcp.TransportLayerNack{Nacks: []rtcp.NackPair{{PacketID: 101 + a.anc.seqOffset}}})
	if st.nacksAnswered.Load() != 2 {
		t.Fatal("answered a NACK for a packet no longer cached")
	}
}

func TestDownTrack_RemovedViewerCostsNothing(t *testing.T) {
	r := newTestRig(t)
	a, b := r.addViewer(), r.addViewer()
	r.feed(1, true)
	r.track.removeDown(b)
	r.feed(2, false)
	if len(r.sent(a)) != 2 || len(r.sent(b)) != 1 {
		t.Fatalf("a got %v, b got %v", r.sent(a), r.sent(b))
	}
	if r.track.ViewerCount() != 1 {
		t.Fatal("removed viewer still listed")
	}
}

func TestTrack_KeyframeStartOnlyMovesForward(t *testing.T) {
	r := newTestRig(t)
	r.feed(10, true)
	r.feed(20, true)
	r.feed(12, true) // a late retransmission of an older keyframe packet
	if r.track.pic.kfSeq != 20 {
		t.Fatalf("picture starts at %d, want 20", r.track.pic.kfSeq)
	}
	for s := uint16(21); s < 21+300; s++ { // longer than the 256-packet cache
		r.feed(s, false)
	}
	if r.track.pic.kfValid {
		t.Fatal("a picture longer than the cache is still offered to late joiners")
	}
}
