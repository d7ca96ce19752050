package node

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
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
