package node

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/halobuzz/live/config"
)

// TestBrowser_DevPageRefreshesItsToken: dev tokens that live 4 s; the live
// page (whose session would end at exp, tearing the broadcast down) stays
// live across several token lifetimes because halo-client.js answers
// token_expiring with a fresh /dev/token, and the viewer keeps decoding.
func TestBrowser_DevPageRefreshesItsToken(t *testing.T) {
	n := startNode(t, func(c *config.Config) {
		c.Dev = true
		c.Auth.TokenTTL = 4 * time.Second
		c.Signaling.TokenRefreshLead = 2 * time.Second
	})
	b := newBrowser(t)
	live, viewer := b.ctx, b.tab("watch")
	ctx, cancel := context.WithTimeout(live, browserDeadline)
	defer cancel()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(n.base+"/#/live/refreshroom"),
		chromedp.WaitEnabled(chromedp.ID("start")),
		chromedp.Click(chromedp.ID("start")),
	); err != nil {
		t.Fatal(err)
	}
	waitPage(t, live, "the live page to go live", `window.haloState || ''`, func(s string) bool { return s == "live" })
	wentLive := time.Now()
	vctx, vcancel := context.WithTimeout(viewer, browserDeadline)
	defer vcancel()
	if err := chromedp.Do(vctx, chromedp.Navigate(n.base+"/#/watch/refreshroom")); err != nil {
		t.Fatal(err)
	}
	waitPage(t, viewer, "frames at the watch page", haloStatsJS, func(s watchStats) bool { return s.FramesDecoded > 0 })

	// Three token lifetimes later the broadcast is still live.
	time.Sleep(time.Until(wentLive.Add(12 * time.Second)))
	var state string
	if err := evalJSON(live, `window.haloState || ''`, &state); err != nil || state != "live" {
		var status string
		_ = evalJSON(live, `document.getElementById('live-status').textContent`, &status)
		t.Fatalf("live page after three token lifetimes: state %q (%v): %s", state, err, status)
	}
	var before watchStats
	if err := evalJSON(viewer, haloStatsJS, &before); err != nil {
		t.Fatal(err)
	}
	waitPage(t, viewer, "the viewer to keep decoding", haloStatsJS, func(s watchStats) bool { return s.FramesDecoded > before.FramesDecoded+10 })
	assertNoPageProblems(t, b)
}
