package sfu

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// h264Packet is an H.264 RTP packet carrying payload.
func h264Packet(seq uint16, ts uint32, payload []byte, marker bool) []byte {
	h := rtp.Header{Version: 2, PayloadType: 102, SequenceNumber: seq, Timestamp: ts, SSRC: 1, Marker: marker}
	pkt, _ := (&rtp.Packet{Header: h, Payload: payload}).Marshal()
	return pkt
}

var testNow = time.Unix(1700000000, 0)

func (r *testRig) feedRaw(pkt []byte) {
	var h rtp.Header
	r.track.ingest(pkt, &h)
	r.track.pump()
}

func TestDownTrack_H264LateJoinerStartsAtTheAccessUnitsFirstPacket(t *testing.T) {
	r := newTestRigCodec(t, webrtc.MimeTypeH264)
	stapA := []byte{0x78, 0x00, 0x03, 0x67, 0x42, 0x00, 0x00, 0x02, 0x68, 0xce} // SPS + PPS
	fu := func(start bool) []byte {
		b := byte(0x05) // IDR
		if start {
			b |= 0x80
		}
		return []byte{0x7c, b, 0xaa}
	}
	const ts = 9000
	// The keyframe: STAP-A(SPS, PPS), then three IDR slices of two
	// fragments each, all with one timestamp.
	r.feedRaw(h264Packet(100, ts, stapA, false))
	for i, s := 0, uint16(101); i < 3; i++ {
		r.feedRaw(h264Packet(s, ts, fu(true), false))
		r.feedRaw(h264Packet(s+1, ts, fu(false), i == 2))
		s += 2
	}
	r.feedRaw(h264Packet(107, ts+3000, []byte{0x41, 0x9a}, true)) // a P slice
	late := r.addViewer()
	r.feedRaw(h264Packet(108, ts+6000, []byte{0x41, 0x9a}, true))
	got := r.sent(late)
	if len(got) != 9 || got[0] != 100 || got[8] != 108 {
		t.Fatalf("late viewer got %v, want 100..108 (from the STAP-A on)", got)
	}
	if first := r.writers[late].packets()[0]; first.head[0] != 0x78 {
		t.Fatalf("first packet starts with %#x, want the STAP-A (0x78)", first.head[0])
	}
}

func TestPicture_AnEarlierPacketOfTheKeyframeArrivingLateMovesTheStartBack(t *testing.T) {
	var p picture
	p.observe(11, 100, true, 256, testNow) // the IDR slice; the STAP-A (10) was lost
	p.observe(12, 100, false, 256, testNow)
	p.observe(10, 100, true, 256, testNow) // retransmitted
	if !p.kfValid || p.kfSeq != 10 {
		t.Fatalf("picture starts at %d (valid %v), want 10", p.kfSeq, p.kfValid)
	}
	p.observe(13, 200, false, 256, testNow)
	p.observe(9, 50, true, 256, testNow) // an older access unit's keyframe
	if p.kfSeq != 10 {
		t.Fatalf("an older access unit moved the picture to %d", p.kfSeq)
	}
}

func TestTrack_LiveViewersAreServedBeforeAJoinStormsReplays(t *testing.T) {
	r := newTestRig(t)
	live := r.addViewer()
	for s := uint16(1); s <= 200; s++ {
		r.feedRaw(vp8Packet(s, uint32(s/4)*3000, s == 1))
	}
	var joiners []*DownTrack
	for range 100 {
		joiners = append(joiners, r.addViewer())
	}
	var h rtp.Header
	r.track.ingest(vp8Packet(201, 51*3000, false), &h)
	r.track.forwardPending()
	if got := r.sent(live); len(got) != 201 || got[200] != 201 {
		t.Fatalf("live viewer has %d packets before any replay work, want 201", len(got))
	}
	r.track.replayRound()
	replayed := 0
	for _, j := range joiners {
		replayed += len(r.sent(j))
	}
	if replayed > replayRoundBudget {
		t.Fatalf("one replay round sent %d packets, budget %d", replayed, replayRoundBudget)
	}
	if replayed == 0 {
		t.Fatal("no replay progress")
	}
	r.track.pump()
	for i, j := range joiners {
		if got := r.sent(j); len(got) != 201 || got[0] != 1 {
			t.Fatalf("joiner %d got %d packets from %v, want the 201 since the keyframe", i, len(got), got[:1])
		}
	}
}

func TestDownTrack_ReplayedPictureIsCompressedToStayNearLive(t *testing.T) {
	r := newTestRig(t)
	// Three seconds since the keyframe at 30 fps.
	for s := uint16(0); s < 90; s++ {
		r.feedRaw(vp8Packet(s, uint32(s)*3000, s == 0))
	}
	late := r.addViewer()
	r.feedRaw(vp8Packet(90, 90*3000, false))
	r.feedRaw(vp8Packet(91, 91*3000, false))
	pkts := r.writers[late].packets()
	if len(pkts) != 92 {
		t.Fatalf("late viewer got %d packets, want 92", len(pkts))
	}
	span := pkts[89].ts - pkts[0].ts
	if span > 90000/maxReplaySpanDiv {
		t.Fatalf("replayed 3 s span takes %d ticks in the viewer's timestamps, want at most %d", span, 90000/maxReplaySpanDiv)
	}
	for i := 1; i < len(pkts); i++ {
		if int32(pkts[i].ts-pkts[i-1].ts) < 0 || pkts[i].seq != pkts[i-1].seq+1 {
			t.Fatalf("packet %d: seq %d ts %d after seq %d ts %d", i, pkts[i].seq, pkts[i].ts, pkts[i-1].seq, pkts[i-1].ts)
		}
	}
	if d := pkts[91].ts - pkts[90].ts; d != 3000 {
		t.Fatalf("live packets after the replay are %d ticks apart, want their true 3000", d)
	}
}

func TestDownTrack_SwitchContinuesTheViewersSequenceAndStartsOnTheNewKeyframe(t *testing.T) {
	a := newTestRig(t)
	v := a.addViewer()
	for s := uint16(500); s < 520; s++ {
		a.feedRaw(vp8Packet(s, uint32(s)*3000, s == 500))
	}
	// The broadcaster republishes: a new track with its own numbering.
	codec := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	b := newTrackFor(a.track.engine, TrackInfo{ID: "t2", Kind: webrtc.RTPCodecTypeVideo}, codec, 2, func(uint32) {})
	if err := v.Switch(b); err != nil {
		t.Fatal(err)
	}
	var h rtp.Header
	for s := uint16(40000); s < 40010; s++ {
		b.ingest(vp8Packet(s, 777+uint32(s-40000)*3000, s == 40003), &h)
		b.pump()
	}
	a.feedRaw(vp8Packet(520, 520*3000, false)) // the old track no longer reaches the viewer
	pkts := a.writers[v].packets()
	if len(pkts) != 20+7 {
		t.Fatalf("viewer got %d packets, want 20 then 7 from the new keyframe", len(pkts))
	}
	for i := 1; i < len(pkts); i++ {
		if pkts[i].seq != pkts[i-1].seq+1 {
			t.Fatalf("sequence gap at %d: %d after %d", i, pkts[i].seq, pkts[i-1].seq)
		}
		if int32(pkts[i].ts-pkts[i-1].ts) <= 0 && i == 20 {
			t.Fatalf("timestamp went back across the switch: %d after %d", pkts[i].ts, pkts[i-1].ts)
		}
	}
	if pkts[20].head[0] != 0x10 || pkts[20].head[1]&0x01 != 0 {
		t.Fatal("first packet from the new source is not its keyframe")
	}
	if a.track.ViewerCount() != 0 || b.ViewerCount() != 1 {
		t.Fatalf("viewer counts old %d new %d", a.track.ViewerCount(), b.ViewerCount())
	}
	other := newTrackFor(a.track.engine, TrackInfo{ID: "t3", Kind: webrtc.RTPCodecTypeVideo}, webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000}, 3, nil)
	if err := v.Switch(other); err != ErrCodecMismatch {
		t.Fatalf("switch to another codec: %v, want ErrCodecMismatch", err)
	}
}

func TestDownTrack_NACKFloodCostsABoundedNumberOfResends(t *testing.T) {
	r := newTestRig(t)
	v := r.addViewer()
	for s := uint16(0); s < 250; s++ {
		r.feedRaw(vp8Packet(s, uint32(s)*3000, s == 0))
	}
	// 300 pairs naming 17 packets each: 5,100 sequence numbers in ~1,200 bytes.
	var pairs []rtcp.NackPair
	for i := range 300 {
		pairs = append(pairs, rtcp.NackPair{PacketID: uint16(i*17) + v.anc.seqOffset, LostPackets: 0xffff})
	}
	before := len(r.sent(v))
	v.handleNACK(&rtcp.TransportLayerNack{Nacks: pairs})
	resent := len(r.sent(v)) - before
	st := r.track.engine.Stats()
	burst := int(v.nack.burst) / 1200
	if resent == 0 || resent > burst+1 {
		t.Fatalf("resent %d packets, want between 1 and the burst of %d", resent, burst)
	}
	if st.NACKsReceived != 5100 || st.NACKsAnswered != uint64(resent) || st.NACKsDropped == 0 {
		t.Fatalf("counters: %+v", st)
	}
	// The same request again at once: nothing is resent twice within an RTT.
	before = len(r.sent(v))
	v.handleNACK(&rtcp.TransportLayerNack{Nacks: pairs[:1]})
	if n := len(r.sent(v)) - before; n != 0 {
		t.Fatalf("repeated NACK resent %d packets", n)
	}
}

func TestDownTrack_PLIFloodIsAnsweredFromTheCacheNotUpstream(t *testing.T) {
	r := newTestRig(t)
	upstream := 0
	r.track.requestKeyframe = func(uint32) { upstream++ }
	r.track.engine.keyframeGap = 0
	v, other := r.addViewer(), r.addViewer()
	for s := uint16(0); s < 20; s++ {
		r.feedRaw(vp8Packet(s, uint32(s)*3000, s == 0))
	}
	upstream = 0
	for i := range 50 {
		v.handlePLI()
		r.feedRaw(vp8Packet(uint16(20+i), uint32(20+i)*3000, false))
	}
	if upstream != 0 {
		t.Fatalf("%d keyframe requests went upstream, want 0 (answered from the cache)", upstream)
	}
	st := r.track.engine.Stats()
	if st.PLIsFromCache != 1 || st.PLIsReceived != 50 {
		t.Fatalf("PLIs: %d received, %d from cache, want 50 and 1 (one per 500 ms)", st.PLIsReceived, st.PLIsFromCache)
	}
	pkts := r.writers[v].packets()
	for i := 1; i < len(pkts); i++ {
		if pkts[i].seq != pkts[i-1].seq+1 {
			t.Fatalf("sequence gap after a cache replay at %d", i)
		}
	}
	if got := r.sent(other); len(got) != 70 {
		t.Fatalf("the other viewer got %d packets, want exactly the 70 live ones", len(got))
	}
}

func TestTrack_ReaderNeverWaitsForAStuckViewer(t *testing.T) {
	r := newTestRig(t)
	block := make(chan struct{})
	d := newDownTrack(r.track)
	d.bind.Store(&binding{ssrc: 9, pt: 96, writer: blockingWriter{block}})
	r.track.addDown(d)
	r.track.start()
	t.Cleanup(func() { // even when the test fails: the forwarder is stopped
		close(block)
		r.track.end()
	})
	var h rtp.Header
	for s := range uint16(5000) { // more than the arrival ring and the cache
		r.track.ingest(vp8Packet(s, uint32(s)*3000, s%100 == 0), &h)
	}
	if n := r.track.written.Load(); n != 5000 {
		t.Fatalf("reader took %d packets", n)
	}
}

type blockingWriter struct{ block chan struct{} }

func (w blockingWriter) WriteRTP(h *rtp.Header, p []byte) (int, error) {
	<-w.block
	return 12 + len(p), nil
}
func (w blockingWriter) Write(b []byte) (int, error) { return len(b), nil }
