package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/halobuzz/live/loadtest"
)

// The moderator's page in Chromium, as a moderator uses it: opened with an
// admin token it lists the live room with its audience and plays its muted
// tile (WHEP); a viewer of its audience is removed with a ban; End,
// confirmed, ends the broadcast (the broadcaster is told
// removed and its socket closes) and the room leaves the list. On a phone's
// screen nothing overflows sideways. Screenshots go to the test's artifact
// directory (go test -artifacts -outputdir DIR).
func TestBrowser_ModeratorPageEndsABroadcast(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const room = "on-air"
	// The broadcaster is the live page's fake camera (real VP8: the tile
	// decodes it), in a tab of its own.
	b := newBrowser(t)
	goLive(t, b.ctx, n, room, "")
	fan := n.viewer(ctx, room, "fan")
	admin := b.tab("admin")
	if err := chromedp.Do(admin, chromedp.Navigate(n.base+"/admin/#token="+n.apiAdmin())); err != nil {
		t.Fatal(err)
	}
	type tile struct {
		Listed  bool   `json:"listed"`
		Viewers string `json:"viewers"`
		Frames  int    `json:"frames"`
		Width   int    `json:"width"`
		Muted   bool   `json:"muted"`
		Address string `json:"address"`
	}
	const tileJS = `(() => {
		const c = document.querySelector('[data-room="on-air"]');
		if (!c) return {listed: false, address: location.href};
		const v = c.querySelector('video');
		const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : {totalVideoFrames: 0};
		return {listed: true, tile: c.dataset.tile || "", viewers: c.querySelector('.viewers').textContent, frames: q.totalVideoFrames,
			width: v.videoWidth, muted: v.muted, address: location.href};
	})()`
	got := waitPage(t, admin, "the room listed with its viewer and its tile playing", tileJS, func(v tile) bool {
		return v.Listed && v.Frames > 0 && v.Width > 0 && len(v.Viewers) > 0 && v.Viewers[0] != '0'
	})
	if !got.Muted {
		t.Error("the tile plays with sound")
	}
	if got.Address != n.base+"/admin/" {
		t.Errorf("the token stays in the address bar: %s", got.Address)
	}
	screenshot(t, admin, "moderator-live.png")

	// Confirmations (the page's dialog) answered as a moderator would:
	// ban for 10 minutes.
	var ok bool
	if err := evalJSON(admin, `window.confirmAction = () => ({ban: '600', reason: 'test'}); true`, &ok); err != nil {
		t.Fatal(err)
	}
	// The audience, and a viewer removed from it.
	if err := chromedp.Do(admin, chromedp.Click(chromedp.CSS(`[data-room="on-air"] button.audience-toggle`))); err != nil {
		t.Fatalf("press Audience: %v", err)
	}
	waitPage(t, admin, "the fan listed in the audience", `!!document.querySelector('[data-room="on-air"] .audience [data-identity="fan"]')`,
		func(v bool) bool { return v })
	screenshot(t, admin, "moderator-audience.png")
	if err := chromedp.Do(admin, chromedp.Click(chromedp.CSS(`[data-room="on-air"] .audience [data-identity="fan"] button.remove`))); err != nil {
		t.Fatalf("press Remove: %v", err)
	}
	select {
	case <-fan.Conn().Done():
	case <-ctx.Done():
		t.Fatal("the removed viewer's socket stayed open")
	}
	if err := chromedp.Do(admin, chromedp.Click(chromedp.CSS(`[data-room="on-air"] button.end`))); err != nil {
		t.Fatalf("press End: %v", err)
	}
	waitPage(t, b.ctx, "the live page to be ended", `window.haloState || ''`, func(s string) bool { return s != "live" })
	if status := apiGet(t, n, "/api/v1/rooms/"+room, n.apiAdmin(), &apiRoomBody{}); status != 404 {
		t.Errorf("the ended room: GET %d, want 404", status)
	}
	waitPage(t, admin, "the ended room to leave the list", tileJS, func(v tile) bool { return !v.Listed })
	var status string
	if err := evalJSON(admin, `document.getElementById('status').textContent`, &status); err != nil || !strings.HasPrefix(status, "end: ") {
		t.Errorf("the page's status after End: %q (%v), want what the call did", status, err)
	}
	screenshot(t, admin, "moderator-ended.png")

	// On a phone: a room listed again, nothing wider than the screen.
	n.publisher(ctx, "second", loadtest.PublisherConfig{VideoBitrate: 300_000})
	if err := chromedp.Do(admin, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	waitPage(t, admin, "the second room listed on a phone's screen", `!!document.querySelector('[data-room="second"]')`, func(v bool) bool { return v })
	var fits bool
	if err := evalJSON(admin, `document.documentElement.scrollWidth <= window.innerWidth`, &fits); err != nil || !fits {
		t.Errorf("the page is wider than a phone's screen (%v)", err)
	}
	screenshot(t, admin, "moderator-phone.png")
	assertNoPageProblems(t, b)
}
