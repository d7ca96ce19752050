package node

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pion/webrtc/v4"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
)

// A broadcaster on the page's WHIP path presses Stop: the page DELETEs its
// session before it closes the connection, so the server ends the tracks
// at once instead of holding them for the republish grace, and a viewer
// over WebSocket is told track_unpublished within a second.
func TestBrowserPage_WHIPStopReachesViewersAtOnce(t *testing.T) {
	n := startNode(t, nil)
	b := newBrowser(t)
	goLive(t, b.ctx, n, "stop", "whip")

	ctx, cancel := context.WithTimeout(context.Background(), browserDeadline)
	defer cancel()
	// The observer has joined (its join answered) before Stop is pressed.
	o := observe(t, ctx, n, "stop")
	pressed := time.Now()
	if err := chromedp.Do(b.ctx, chromedp.Click(chromedp.ID("stop"))); err != nil {
		t.Fatalf("press Stop: %v", err)
	}
	var told time.Duration
	deadline := pressed.Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, ok := o.find("track_unpublished"); ok {
			told = time.Since(pressed)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if told == 0 {
		t.Fatalf("the viewer was not told track_unpublished within 5 s of Stop (the republish grace is 10 s)")
	}
	t.Logf("track_unpublished %v after Stop", told.Round(time.Millisecond))
	if told > time.Second {
		t.Fatalf("the viewer was told track_unpublished %v after Stop; want < 1 s", told)
	}
	assertNoPageProblems(t, b)
}

// A WHEP viewer opened before the broadcast: the node answers 404 not_found
// with Retry-After, the page waits that long (not a fixed period of its
// own) before it asks again, and it plays once the broadcast starts.
func TestBrowserPage_WHEPViewerWaitsAsTheServerSays(t *testing.T) {
	n := startNode(t, nil)
	const room = "whep-wait"

	// What a WHEP player is told in a room with nothing published.
	pc := newTestPC(t)
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	offer := testutil.LocalOffer(t, pc)
	_ = pc.Close()
	resp := doHTTP(t, "POST", n.base+"/whep/"+room, n.token(room, "curl", false, true), "application/sdp", offer, nil)
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	body := string(raw)
	// signaling's retryAfterNoTracks.
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Retry-After") != "5" || !strings.HasPrefix(body, "not_found:") {
		t.Fatalf("WHEP to an empty room: %d, Retry-After %q, %q; want 404, 5, not_found", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}

	b := newBrowser(t)
	watch(t, b.ctx, n, room, "whep")
	type wait struct {
		Code string `json:"code"`
		Ms   int    `json:"ms"`
	}
	type page struct {
		whepPageStats
		Waits []wait `json:"waits"`
	}
	// The page's own fallback, with no Retry-After, is 10 s: 5000 ms is
	// the server's word.
	p := waitPage(t, b.ctx, "the page told to wait", haloStatsJS, func(p page) bool { return len(p.Waits) >= 1 })
	if p.Waits[0] != (wait{Code: "not_found", Ms: 5000}) || p.State != "waiting" {
		t.Fatalf("the page waited %+v in state %q; want not_found for 5000 ms (Retry-After: 5), waiting", p.Waits, p.State)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*browserDeadline)
	defer cancel()
	n.publisher(ctx, room, loadtest.PublisherConfig{VideoBitrate: 300_000})
	p = waitPage(t, b.ctx, "the WHEP page receiving once the broadcast starts", haloStatsJS, func(p page) bool {
		return p.State == "live" && p.VideoPacketsReceived > 50
	})
	for _, w := range p.Waits {
		if w != (wait{Code: "not_found", Ms: 5000}) {
			t.Fatalf("the page waited %+v; want not_found for 5000 ms each time", p.Waits)
		}
	}
	t.Logf("the page waited %+v, then played", p.Waits)
	assertNoPageProblems(t, b)
}
