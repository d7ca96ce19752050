package node

import (
	"strings"
	"testing"
	"time"
)

// A browser whose WebRTC media never gets through (only relay candidates
// allowed, and the node offers no TURN: a network that blocks UDP and the
// media port) falls back to the room's LL-HLS by itself after its media
// connection failed twice, says why on the page, and plays.
func TestBrowser_WatchPageFallsBackToHLSWhenWebRTCFails(t *testing.T) {
	b := newBrowser(t)
	aus := encodeH264(t, 4)
	n := startNode(t, nil)
	whipPublishH264(t, n, "blocked", aus)
	waitTracks(t, n, "blocked", 2)

	tab := b.tab("blocked")
	forceRelay(t, tab)
	watch(t, tab, n, "blocked", "")
	// ICE gives up on its own schedule: wait for the fallback longer than
	// a page wait, then for the picture.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var via string
		if err := evalJSON(tab, `(async () => (await window.haloStats()).via)()`, &via); err == nil && via == "hls" {
			break
		}
		if time.Now().After(deadline) {
			var status string
			_ = evalJSON(tab, watchStatus, &status)
			t.Fatalf("no fallback to HLS within 2 min; status %q", status)
		}
		time.Sleep(500 * time.Millisecond)
	}
	p := waitHLSPlaying(t, b, tab)
	var status, via string
	if err := evalJSON(tab, watchStatus, &status); err != nil || !strings.Contains(status, "WebRTC did not work here") || !strings.Contains(status, "LL-HLS") {
		t.Fatalf("status %q (%v): the page must say WebRTC failed and it plays LL-HLS", status, err)
	}
	if err := evalJSON(tab, `document.getElementById('watch-via').textContent`, &via); err != nil || via != "LL-HLS (fallback)" {
		t.Fatalf("watch via %q (%v)", via, err)
	}
	t.Logf("fallback after WebRTC failed: %q, latency %.0f ms, fallback %q", status, *p.LatencyMs, p.Fallback)
	assertNoPageProblems(t, b)
}
