package node

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// hostileViewer is a WHEP client that watches a broadcast and floods the
// server with feedback: NACKs naming ~1,700 packets each and PLIs.
type hostileViewer struct {
	pc      *webrtc.PeerConnection
	ssrc    atomic.Uint32 // the video track's SSRC, once it started
	lastSeq atomic.Uint32 // the newest video sequence number received
	packets atomic.Int64  // video packets received
}

func watchHostile(t *testing.T, n *testNode, room string) *hostileViewer {
	t.Helper()
	h := &hostileViewer{pc: newTestPC(t)}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := h.pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	h.pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		video := tr.Kind() == webrtc.RTPCodecTypeVideo
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if video {
				h.ssrc.Store(p.SSRC)
				h.lastSeq.Store(uint32(p.SequenceNumber))
				h.packets.Add(1)
			}
		}
	})
	c := &whipClient{pc: h.pc}
	if resp := c.post(t, n.base+"/whep/"+room, n.token(room, "hostile", false, true)); resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("WHEP POST: %d %s", resp.StatusCode, b)
	}
	return h
}

// flood sends, every 20 ms (50/s each), a NACK of 100 pairs with all 16
// bitmask bits set (1,700 sequence numbers, the 1,700 before the newest
// packet received) and a PLI, until stop is called. stop returns how many
// rounds were sent.
func (h *hostileViewer) flood() (stop func() int) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var rounds int
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			ssrc := h.ssrc.Load()
			base := uint16(h.lastSeq.Load()) - 1700
			nack := &rtcp.TransportLayerNack{SenderSSRC: 1, MediaSSRC: ssrc, Nacks: make([]rtcp.NackPair, 100)}
			for i := range nack.Nacks {
				nack.Nacks[i] = rtcp.NackPair{PacketID: base + uint16(i*17), LostPackets: 0xffff}
			}
			if err := h.pc.WriteRTCP([]rtcp.Packet{nack, &rtcp.PictureLossIndication{SenderSSRC: 1, MediaSSRC: ssrc}}); err == nil {
				rounds++
			}
		}
	}()
	var once sync.Once
	return func() int {
		once.Do(func() { close(done); wg.Wait() })
		return rounds
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestFlood_NACKAndPLIFloodFromOneViewerChangesNothingForTheOthers: a viewer
// sending 50 NACKs/s naming ~1,700 packets each and 50 PLIs/s leaves the
// other viewers receiving every packet, and the broadcaster is asked for no
// keyframe (viewers' PLIs are answered from the cached picture); the
// server's resends stay within the hostile viewer's budget.
func TestFlood_NACKAndPLIFloodFromOneViewerChangesNothingForTheOthers(t *testing.T) {
	if testing.Short() {
		t.Skip("seconds of media")
	}
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const keyframeEvery = 2 * time.Second
	pub := n.publisher(ctx, "flood", loadtest.PublisherConfig{VideoBitrate: testBitrate, KeyframeInterval: keyframeEvery})
	viewers := make([]*loadtest.Viewer, 10)
	for i := range viewers {
		viewers[i] = n.viewer(ctx, "flood", fmt.Sprintf("viewer-%d", i))
	}
	for i, v := range viewers {
		if err := v.WaitTracks(ctx, 2); err != nil {
			t.Fatalf("viewer %d: %v (stats %+v)", i, err, v.Stats())
		}
	}
	hostile := watchHostile(t, n, "flood")
	testutil.Eventually(t, "the hostile viewer receives video", func() bool { return hostile.packets.Load() > 100 })

	// A quiet window for comparison (CPU only: it is logged, not asserted),
	// once the joins have settled.
	const window = 5 * time.Second
	time.Sleep(time.Second)
	cpu0 := processCPU()
	time.Sleep(window)
	quietCPU := processCPU() - cpu0

	p0, s0 := pub.Stats(), n.engine.Stats()
	v0 := make([]loadtest.ViewerStats, len(viewers))
	for i, v := range viewers {
		v0[i] = v.Stats()
	}
	cpu0 = processCPU()
	stop := hostile.flood()
	t.Cleanup(func() { stop() })
	time.Sleep(window)
	rounds := stop()
	floodCPU := processCPU() - cpu0
	s1 := n.engine.Stats()
	// Every packet sent must arrive, however long the last ones take on a
	// busy machine: stop the publisher, then wait until the viewers have
	// stopped receiving.
	_ = pub.Close()
	p1 := pub.Stats()
	settle(viewers)
	t.Logf("process CPU (server and all clients): %v per %v quiet, %v flooded (%.2fx); %d flood rounds",
		quietCPU, window, floodCPU, float64(floodCPU)/float64(quietCPU), rounds)
	received, answered, dropped := s1.NACKsReceived-s0.NACKsReceived, s1.NACKsAnswered-s0.NACKsAnswered, s1.NACKsDropped-s0.NACKsDropped
	t.Logf("server: NACKed %d, resent %d, ignored %d, dropped %d; PLIs %d, answered from the cache %d, ignored %d",
		received, answered, s1.NACKsIgnored-s0.NACKsIgnored, dropped,
		s1.PLIsReceived-s0.PLIsReceived, s1.PLIsFromCache-s0.PLIsFromCache, s1.PLIsIgnored-s0.PLIsIgnored)

	// The flood reached the server.
	if rounds < 50 || received < uint64(rounds)*1700/2 || s1.PLIsReceived-s0.PLIsReceived < uint64(rounds)/2 {
		t.Fatalf("flood of %d rounds: the server saw %d NACKed packets and %d PLIs", rounds, received, s1.PLIsReceived-s0.PLIsReceived)
	}
	// It was bounded: some resends (the hostile viewer is a viewer too), far
	// fewer than asked for, the rest dropped over the viewer's budget.
	if answered == 0 || dropped == 0 || answered*20 > received {
		t.Errorf("NACKed %d, resent %d, dropped %d: want some resent, far fewer than asked, and the excess dropped", received, answered, dropped)
	}
	// The broadcaster was not asked for a single keyframe, and its keyframe
	// rate is its own.
	if p1.PLIs != p0.PLIs || s1.PLIsSent != s0.PLIsSent {
		t.Errorf("the broadcaster received %d keyframe requests during the flood (server sent %d), want 0", p1.PLIs-p0.PLIs, s1.PLIsSent-s0.PLIsSent)
	}
	if k, most := p1.Keyframes-p0.Keyframes, uint64(window/keyframeEvery)+1; k > most {
		t.Errorf("the broadcaster sent %d keyframes in %v, more than its own %d", k, window, most)
	}
	// The other viewers lost nothing.
	sent := (p1.VideoPackets + p1.AudioPackets) - (p0.VideoPackets + p0.AudioPackets)
	for i, v := range viewers {
		s := v.Stats()
		got := (s.VideoPackets + s.AudioPackets) - (v0[i].VideoPackets + v0[i].AudioPackets)
		if float64(got) < 0.99*float64(sent) {
			t.Errorf("viewer %d received %d of %d packets (%.2f %%) during the flood", i, got, sent, 100*float64(got)/float64(sent))
		}
		if s.Lost != v0[i].Lost {
			t.Errorf("viewer %d lost %d packets during the flood", i, s.Lost-v0[i].Lost)
		}
	}
}
