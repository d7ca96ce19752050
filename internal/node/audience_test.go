package node

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	"github.com/pion/webrtc/v4"
)

// WHEP sessions whose players never start ICE (bots, or players that went
// away after their POST) are answered, within a cap per address, but they
// are not an audience: the room's viewer count, which an app shows its
// users, counts only viewers whose media connection came up, and the
// pending sessions end within 10 s, giving back what they held.
func TestAudience_NeverConnectingWHEPSessionsAreNotCounted(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const room = "bots"
	n.publisher(ctx, room, loadtest.PublisherConfig{VideoBitrate: testBitrate})
	real := n.viewer(ctx, room, "real-viewer")
	if err := real.WaitTracks(ctx, 2); err != nil {
		t.Fatal(err)
	}
	r := n.rooms.Room(room)
	testutil.Eventually(t, "the real viewer counts", func() bool { return r.ViewerCount() == 1 })
	baseline := runtime.NumGoroutine()
	subsBefore := n.engine.Stats().Subscribers

	// One offer, posted again and again: sessions that never start ICE.
	pc := newTestPC(t)
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	offer := testutil.LocalOffer(t, pc)
	_ = pc.Close()
	// From one address, at most limits.pending_sessions_per_ip wait at
	// once; the next are refused, retryably.
	bots := n.cfg.Limits.PendingSessionsPerIP
	if bots <= 0 || bots > 100 {
		t.Fatalf("limits.pending_sessions_per_ip is %d: the test wants a cap", bots)
	}
	posted := time.Now()
	for i := range bots + 5 {
		resp := doHTTP(t, "POST", n.base+"/whep/"+room, n.token(room, fmt.Sprintf("bot-%d", i), false, true), "application/sdp", offer, nil)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch {
		case i < bots && resp.StatusCode != http.StatusCreated:
			t.Fatalf("bot %d: WHEP %d, want 201 within the cap of %d", i, resp.StatusCode, bots)
		case i >= bots && (resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == ""):
			t.Fatalf("bot %d: WHEP %d (Retry-After %q), want 429 with Retry-After beyond the cap of %d pending sessions", i, resp.StatusCode, resp.Header.Get("Retry-After"), bots)
		}
	}
	if s := n.engine.Stats().Subscribers; s < subsBefore+int64(bots) {
		t.Fatalf("%d subscriber connections after %d sessions, want at least %d", s, bots, subsBefore+int64(bots))
	}
	for time.Since(posted) < 3*time.Second {
		if c := r.ViewerCount(); c != 1 {
			t.Fatalf("viewer count %d with %d never-connecting sessions, want 1 (the real viewer)", c, bots)
		}
		time.Sleep(100 * time.Millisecond)
	}
	testutil.EventuallyWithin(t, 15*time.Second, "the pending sessions end", func() bool {
		return n.engine.Stats().Subscribers == subsBefore
	})
	t.Logf("the %d pending sessions ended %v after their POST", bots, time.Since(posted).Round(100*time.Millisecond))
	if d := time.Since(posted); d > 12*time.Second {
		t.Errorf("pending sessions ended %v after their POST, want within 10 s of their answer", d)
	}
	testutil.Eventually(t, "their goroutines are gone", func() bool { return runtime.NumGoroutine() <= baseline+5 })
	if c := r.ViewerCount(); c != 1 {
		t.Errorf("viewer count %d after the pending sessions ended, want 1", c)
	}
	if s := real.Stats(); s.Recoveries != 0 {
		t.Errorf("the real viewer rejoined %d times", s.Recoveries)
	}
}
