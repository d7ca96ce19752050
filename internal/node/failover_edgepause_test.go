package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	"github.com/pion/webrtc/v4"
)

// An edge node hangs (SIGSTOP: a VM pause, a stall) longer than the
// origin waits for its relay (15 s of silence, sfu's ICE timeouts), then
// resumes. The origin has ended the relay meanwhile; the edge, on its
// return, finds out at once and relays again: its viewers, still
// connected, play again within a heartbeat or two of the return, not
// after the edge's own relay times out 15 s later.
func TestFailover_EdgePaused_ItsViewersPlayAgainOnItsReturn(t *testing.T) {
	if testing.Short() {
		t.Skip("a paused edge")
	}
	r := testutil.StartRedis(t)
	secret := strings.Repeat("e7", 20)
	a := startClusterNode(t, r, "node-a", "eu", secret)
	e := startNodeProc(t, r, "node-e", "in", secret)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const room = "sleeper"
	a.publisher(ctx, room, loadtest.PublisherConfig{VideoBitrate: 300_000})
	v := e.viewer(ctx, room, "ws-on-e")
	if err := v.WaitTracks(ctx, 2); err != nil {
		t.Fatalf("viewer on e: %v", err)
	}
	_, rec := whepRecord(t, e.testNode, room)
	testutil.Eventually(t, "the WHEP player on e plays", func() bool { return rec.count(webrtc.RTPCodecTypeVideo) > 30 })
	testutil.Eventually(t, "the WebSocket viewer on e plays", func() bool { return v.Stats().VideoPackets > 30 })

	const pause = 20 * time.Second
	e.Stop()
	time.Sleep(pause)
	e.Continue()
	back := time.Now()

	// What the edge's sockets held while it was stopped is read in the
	// first moments back: the viewers get that at once, whether the relay
	// lives or not. Live media is what comes after.
	time.Sleep(time.Second)
	before := v.Stats().VideoPackets
	count := rec.count(webrtc.RTPCodecTypeVideo)
	// One heartbeat to see it was away, a relay set-up, and slack for a
	// busy machine: well under the 15 s the dead relay would take to time
	// out on the edge.
	within := 6 * time.Second
	testutil.EventuallyWithin(t, within, "the WHEP player on e plays again", func() bool {
		return rec.count(webrtc.RTPCodecTypeVideo) > count+30
	})
	t.Logf("the WHEP player on e plays again %v after e's return", time.Since(back).Round(time.Millisecond))
	testutil.EventuallyWithin(t, within, "the WebSocket viewer on e plays again", func() bool {
		return v.Stats().VideoPackets > before+30
	})
	t.Logf("the WebSocket viewer on e plays again %v after e's return", time.Since(back).Round(time.Millisecond))
	if s := v.Stats(); s.Recoveries != 0 {
		t.Errorf("the WebSocket viewer rejoined %d times", s.Recoveries)
	}
}
