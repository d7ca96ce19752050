package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
)

// A viewer who waits in the room before the broadcast starts gets the tracks
// when they appear (server renegotiation), is told when they end, and gets the
// next broadcast too: the usual "broadcaster reconnects" story.
func TestRenegotiation_ViewerWaitsThroughTwoBroadcasts(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	v := n.viewer(ctx, "reneg", "waiting")

	first := n.publisher(ctx, "reneg", loadtest.PublisherConfig{VideoBitrate: 300_000})
	if err := v.WaitTracks(ctx, 2); err != nil {
		t.Fatalf("first broadcast: %v", err)
	}
	_ = first.Close()
	testutil.Eventually(t, "first broadcast's tracks released", func() bool {
		s := n.engine.Stats()
		return s.Tracks == 0 && s.DownTracks == 0
	})

	before := v.Stats()
	n.publisher(ctx, "reneg", loadtest.PublisherConfig{VideoBitrate: 300_000})
	testutil.Eventually(t, "second broadcast reaches the same viewer", func() bool {
		s := v.Stats()
		return s.VideoPackets > before.VideoPackets+50 && s.AudioPackets > before.AudioPackets+20
	})
	if got := n.engine.Stats().DownTracks; got != 2 {
		t.Fatalf("down-tracks = %d, want 2", got)
	}
	// The second broadcast reused the first one's media sections.
	lastOffer := ""
	for {
		qctx, qcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		env, err := v.Conn().Next(qctx)
		qcancel()
		if err != nil {
			break
		}
		if env.Type == "offer" {
			var d struct{ SDP string }
			_ = env.Decode(&d)
			lastOffer = d.SDP
		}
	}
	if m := strings.Count(lastOffer, "\r\nm="); m != 2 {
		t.Fatalf("last offer has %d media sections, want 2 (reused):\n%s", m, lastOffer)
	}
}
