package node

import (
	"context"
	"testing"
	"time"

	"github.com/halobuzz/live/loadtest"
)

// TestGoodbye_TheBroadcastsLastPacketsReachEveryViewer: a broadcaster who
// ends the show (a leave message right after its last packet) is heard to
// its last word: every packet sent in the last seconds reaches every
// viewer, however busy the node is when the goodbye comes.
func TestGoodbye_TheBroadcastsLastPacketsReachEveryViewer(t *testing.T) {
	if testing.Short() {
		t.Skip("seconds of media")
	}
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pub := n.publisher(ctx, "finale", loadtest.PublisherConfig{VideoBitrate: 2_500_000})
	viewers := make([]*loadtest.Viewer, 8)
	for i := range viewers {
		viewers[i] = n.viewer(ctx, "finale", "fan-"+string(rune('a'+i)))
	}
	for i, v := range viewers {
		if err := v.WaitTracks(ctx, 2); err != nil {
			t.Fatalf("viewer %d: %v", i, err)
		}
	}
	time.Sleep(time.Second) // the joiners' replay is over: all of them are live
	// The viewers are counted before the publisher: a packet in flight
	// between the two counts is counted as received, not as sent, so the
	// check errs on the lenient side by that much, never the other way.
	v0 := make([]loadtest.ViewerStats, len(viewers))
	for i, v := range viewers {
		v0[i] = v.Stats()
	}
	p0 := pub.Stats()
	time.Sleep(2 * time.Second)
	_ = pub.Close()
	p1 := pub.Stats()
	settle(viewers)
	sentV, sentA := p1.VideoPackets-p0.VideoPackets, p1.AudioPackets-p0.AudioPackets
	for i, v := range viewers {
		s := v.Stats()
		gotV, gotA := s.VideoPackets-v0[i].VideoPackets, s.AudioPackets-v0[i].AudioPackets
		if gotV < sentV || gotA < sentA {
			t.Errorf("viewer %d received %d video and %d audio packets of the last %d and %d sent (lost %d)",
				i, gotV, gotA, sentV, sentA, s.Lost)
		}
	}
	if t.Failed() {
		t.Logf("engine: %+v", n.engine.Stats())
	}
}
