package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/halobuzz/live/loadtest"
)

// TestBroadcast_TwentyViewersReceiveEveryPacket is the product in one test: a
// broadcaster publishes VP8 + Opus, twenty viewers watch, and over ten
// seconds each receives at least 99 % of what was sent.
func TestBroadcast_TwentyViewersReceiveEveryPacket(t *testing.T) {
	if testing.Short() {
		t.Skip("ten seconds of media")
	}
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pub := n.publisher(ctx, "show", loadtest.PublisherConfig{VideoBitrate: testBitrate})
	viewers := make([]*loadtest.Viewer, 20)
	for i := range viewers {
		viewers[i] = n.viewer(ctx, "show", fmt.Sprintf("viewer-%d", i))
	}
	for i, v := range viewers {
		if err := v.WaitTracks(ctx, 2); err != nil {
			t.Fatalf("viewer %d: %v (stats %+v)", i, err, v.Stats())
		}
	}
	p0 := pub.Stats()
	v0 := make([]loadtest.ViewerStats, len(viewers))
	for i, v := range viewers {
		v0[i] = v.Stats()
	}
	time.Sleep(10 * time.Second)
	// Every packet sent must arrive, however long the last ones take on a
	// busy machine: stop the publisher, then wait until the viewers have
	// stopped receiving.
	if st := n.engine.Stats(); st.DownTracks != 40 {
		t.Errorf("down-tracks = %d, want 40 (20 viewers x 2 tracks)", st.DownTracks)
	}
	_ = pub.Close()
	p1 := pub.Stats()
	settle(viewers)
	sent := (p1.VideoPackets + p1.AudioPackets) - (p0.VideoPackets + p0.AudioPackets)
	if sent < 1000 {
		t.Fatalf("publisher sent only %d packets in 10 s", sent)
	}
	for i, v := range viewers {
		s := v.Stats()
		got := (s.VideoPackets + s.AudioPackets) - (v0[i].VideoPackets + v0[i].AudioPackets)
		if float64(got) < 0.99*float64(sent) {
			t.Errorf("viewer %d received %d of %d packets (%.2f %%), lost %d", i, got, sent, 100*float64(got)/float64(sent), s.Lost)
		}
		if !s.FirstVideoIsKeyframe {
			t.Errorf("viewer %d: first video frame was not a keyframe", i)
		}
	}
}
