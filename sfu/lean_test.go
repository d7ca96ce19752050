package sfu

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// pionViewer is a real Pion receiver (Pion's default interceptors: it sends
// receiver reports and NACKs like a browser) watching through the engine.
type pionViewer struct {
	pc  *webrtc.PeerConnection
	sub *Subscriber

	mu      sync.Mutex
	seqs    []uint16 // every packet received, in arrival order
	heads   map[uint16]byte
	srs     []rtcp.SenderReport
	ssrc    uint32
	atSR    []int // len(seqs) when each sender report arrived
	started chan struct{}
}

func newPionViewer(t *testing.T, e *Engine, tracks ...*Track) *pionViewer {
	t.Helper()
	return newPionViewerOpts(t, e, false, tracks...)
}

// newPionViewerOpts: with seeRepeats the viewer's SRTP replay protection is
// off, so that a test sees a packet sent twice (a browser drops the copy).
func newPionViewerOpts(t *testing.T, e *Engine, seeRepeats bool, tracks ...*Track) *pionViewer {
	t.Helper()
	pc := testutil.LoopbackPeer(t, testutil.PeerOptions{ReplayWindow: 1024, SeeRepeats: seeRepeats})
	v := &pionViewer{pc: pc, heads: map[uint16]byte{}, started: make(chan struct{})}
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	pc.OnTrack(func(tr *webrtc.TrackRemote, rc *webrtc.RTPReceiver) {
		v.mu.Lock()
		v.ssrc = uint32(tr.SSRC())
		v.mu.Unlock()
		go func() {
			for {
				pkts, _, err := rc.ReadRTCP()
				if err != nil {
					return
				}
				for _, p := range pkts {
					if sr, ok := p.(*rtcp.SenderReport); ok {
						v.mu.Lock()
						v.srs = append(v.srs, *sr)
						v.atSR = append(v.atSR, len(v.seqs))
						v.mu.Unlock()
					}
				}
			}
		}()
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			v.mu.Lock()
			v.seqs = append(v.seqs, p.SequenceNumber)
			if _, ok := v.heads[p.SequenceNumber]; !ok && len(p.Payload) > 1 {
				v.heads[p.SequenceNumber] = p.Payload[1]
			}
			v.mu.Unlock()
			once.Do(func() { close(v.started) })
		}
	})
	testutil.LocalOffer(t, pc)
	sub, err := e.NewSubscriber(SubscriberEvents{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	answer, err := sub.AnswerOffer(ctx, pc.LocalDescription().SDP, tracks)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	v.sub = sub
	return v
}

func (v *pionViewer) received() []uint16 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]uint16(nil), v.seqs...)
}

// feedTrack publishes a VP8 track on e: pps packets a second, a keyframe
// every keyEvery packets, until the test ends. It returns the track and a
// function that waits until n packets were fed.
func feedTrack(t *testing.T, e *Engine, pps, keyEvery int) (*Track, func(n uint16)) {
	t.Helper()
	codec := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: videoFeedback}
	tr := newTrackFor(e, TrackInfo{ID: "t_cam", StreamID: "p_1", Kind: webrtc.RTPCodecTypeVideo, MimeType: codec.MimeType}, codec, 1, func(uint32) {})
	tr.start()
	stop := make(chan struct{})
	done := make(chan struct{})
	var mu sync.Mutex
	var fed uint16
	go func() {
		defer close(done)
		var h rtp.Header
		tick := time.NewTicker(time.Second / time.Duration(pps))
		defer tick.Stop()
		for seq := uint16(1); ; seq++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			pkt := vp8Packet(seq, uint32(seq)*3000, int(seq)%keyEvery == 1)
			pkt[12+2] = byte(seq) // the payload says which packet it is
			tr.ingest(pkt, &h)
			mu.Lock()
			fed = seq
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { close(stop); <-done; tr.end() })
	return tr, func(n uint16) {
		deadline := time.Now().Add(20 * time.Second)
		for {
			mu.Lock()
			f := fed
			mu.Unlock()
			if f >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("fed %d packets of %d", f, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// More viewers than one sendmmsg takes: every viewer still gets every
// packet once, in order, and the packets left in batches (far fewer system
// calls than packets), encrypted by the engine rather than Pion.
func TestLean_BatchedSendsKeepEachViewersOrder(t *testing.T) {
	e := newLoopbackEngine(t)
	tr, waitFed := feedTrack(t, e, 100, 50)
	const viewers = batchMax + 6
	vs := make([]*pionViewer, viewers)
	for i := range vs {
		vs[i] = newPionViewer(t, e, tr)
	}
	for i, v := range vs {
		select {
		case <-v.started:
		case <-time.After(15 * time.Second):
			t.Fatalf("viewer %d got no packet", i)
		}
	}
	before := e.Stats()
	waitFed(250)
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < len(vs); {
		if len(vs[i].received()) >= 100 {
			i++
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("viewer %d got %d packets in 20 s", i, len(vs[i].received()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	after := e.Stats()
	for i, v := range vs {
		got := v.received()
		for j := 1; j < len(got); j++ {
			if got[j] != got[j-1]+1 {
				t.Fatalf("viewer %d: packet %d follows %d (out of order, lost or repeated)", i, got[j], got[j-1])
			}
		}
	}
	fwd := after.PacketsForwarded - before.PacketsForwarded
	direct := after.DirectPackets - before.DirectPackets
	calls := after.SendCalls - before.SendCalls
	// (The two counters are added at slightly different moments of a
	// round: they may differ by the rounds under way.)
	if fwd == 0 || direct+2*viewers < fwd || direct > fwd+2*viewers {
		t.Fatalf("%d packets forwarded, %d of them on the lean path", fwd, direct)
	}
	// One round per packet: viewers/batchMax+1 calls each.
	if rounds := fwd / viewers; calls > 2*rounds+10 {
		t.Fatalf("%d sendmmsg calls for %d packets to %d viewers: not batched", calls, fwd, viewers)
	}
	t.Logf("%d packets in %d sendmmsg calls", fwd, calls)
}

// A late joiner is replayed the cached picture, then gets live packets;
// a NACK is answered with the same packet again. The viewer sees the
// picture and the live packets in order, and each retransmission after its
// request.
func TestLean_ReplayAndNACKInterleaveWithLivePackets(t *testing.T) {
	e := newLoopbackEngine(t)
	tr, waitFed := feedTrack(t, e, 100, 1000) // one keyframe, at packet 1
	waitFed(40)                               // the picture is 40 packets old when the viewer joins
	v := newPionViewerOpts(t, e, true, tr)
	select {
	case <-v.started:
	case <-time.After(15 * time.Second):
		t.Fatal("no packet")
	}
	time.Sleep(300 * time.Millisecond)
	first := v.received()
	v.mu.Lock()
	key := v.heads[first[0]]
	ssrc := v.ssrc
	v.mu.Unlock()
	if key&0x01 != 0 {
		t.Fatal("the late joiner did not start on the keyframe")
	}
	// Ask again for five packets it already has.
	lost := []uint16{first[3], first[10], first[11], first[20], first[len(first)-2]}
	var nacks []rtcp.NackPair
	for _, s := range lost {
		nacks = append(nacks, rtcp.NackPair{PacketID: s})
	}
	if err := v.pc.WriteRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{MediaSSRC: ssrc, Nacks: nacks}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	got := v.received()
	seen := map[uint16]int{}
	var firsts []uint16
	for i, s := range got {
		seen[s]++
		if seen[s] == 1 {
			firsts = append(firsts, s)
		} else if i < len(first) {
			t.Fatalf("packet %d came twice before it was asked for again", s)
		}
	}
	for i := 1; i < len(firsts); i++ {
		if firsts[i] != firsts[i-1]+1 {
			t.Fatalf("packet %d follows %d", firsts[i], firsts[i-1])
		}
	}
	for _, s := range lost {
		if seen[s] != 2 {
			t.Fatalf("packet %d arrived %d times, want the original and one resend", s, seen[s])
		}
	}
	if st := e.Stats(); st.Replays != 1 || st.NACKsAnswered != uint64(len(lost)) {
		t.Fatalf("replays %d, NACKs answered %d", st.Replays, st.NACKsAnswered)
	}
}

// The engine's sender reports reach a viewer with the count of what it was
// sent, and the viewer's receiver reports echo them: the down-track learns
// its round-trip time.
func TestLean_SenderReportsCountWhatWasSent(t *testing.T) {
	e := newLoopbackEngine(t)
	tr, _ := feedTrack(t, e, 100, 50)
	v := newPionViewer(t, e, tr)
	deadline := time.Now().Add(15 * time.Second)
	for {
		v.mu.Lock()
		n := len(v.srs)
		v.mu.Unlock()
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sender reports in 15 s", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	v.mu.Lock()
	srs, at, ssrc := append([]rtcp.SenderReport(nil), v.srs...), append([]int(nil), v.atSR...), v.ssrc
	v.mu.Unlock()
	for i, sr := range srs {
		if sr.SSRC != ssrc {
			t.Fatalf("report for SSRC %d, the viewer's stream is %d", sr.SSRC, ssrc)
		}
		// The report counts what was sent when it left; the viewer had
		// received at most that, and all but what was in flight.
		if int(sr.PacketCount) < at[i]-5 || int(sr.PacketCount) > at[i]+5 {
			t.Fatalf("report %d counts %d packets, the viewer had %d", i, sr.PacketCount, at[i])
		}
		if sr.OctetCount != sr.PacketCount*1188 {
			t.Fatalf("report counts %d octets for %d packets of 1188", sr.OctetCount, sr.PacketCount)
		}
	}
	var dt *DownTrack
	v.sub.mu.Lock()
	for _, s := range v.sub.subs {
		dt = s.dt
	}
	v.sub.mu.Unlock()
	for dt.RTT() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no round-trip time from the viewer's receiver reports")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A connection with many tracks (a relay trunk, a viewer of a large room)
// sends its sender reports in compound packets that fit a receiver's
// one-MTU read buffer: none is lost whole, and every report is sent.
func TestSenderReports_SplitToFitAReceiversBuffer(t *testing.T) {
	for _, tracks := range []int{1, 39, 40, 60, 200} {
		pkts := make([]rtcp.Packet, tracks)
		for i := range pkts {
			pkts[i] = &rtcp.SenderReport{SSRC: uint32(i + 1), NTPTime: uint64(i), RTPTime: uint32(i), PacketCount: 1, OctetCount: 1}
		}
		sent := 0
		for rest := pkts; len(rest) > 0; {
			n := rtcpBatch(rest)
			b, err := rtcp.Marshal(rest[:n])
			if err != nil {
				t.Fatal(err)
			}
			// Pion's receive buffer is 1,460 bytes; SRTCP adds up to 18.
			if len(b)+18 > 1460 {
				t.Errorf("%d tracks: a compound packet of %d bytes would not fit a receiver's buffer", tracks, len(b))
			}
			sent += n
			rest = rest[n:]
		}
		if sent != tracks {
			t.Errorf("%d tracks: %d reports sent", tracks, sent)
		}
	}
}
