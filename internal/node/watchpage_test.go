package node

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
)

// watchPage is what a viewer of the watch page sees, from window.haloStats().
type watchPage struct {
	watchStats
	Shown []struct {
		FPS  float64 `json:"fps"`
		Kbps float64 `json:"kbps"`
		Ms   float64 `json:"ms"`
	} `json:"shown"`
	Placeholder     bool   `json:"placeholder"`
	PlaceholderText string `json:"placeholderText"`
	PictureWidth    int    `json:"pictureWidth"`
	Receiving       string `json:"receiving"`
}

// The watch page shows only what it receives: an empty room is not
// "Receiving" and shows a placeholder; the overlay's first rates are
// measured over a real second, not the burst of the first keyframe; a
// broadcast that ended leaves the placeholder, not its frozen last frame.
func TestBrowser_WatchPageShowsOnlyWhatItReceives(t *testing.T) {
	n := startNode(t, nil)
	b := newBrowser(t)
	live, viewer := b.ctx, b.tab("watch")

	watch(t, viewer, n, "truth", "")
	testutil.Eventually(t, "the watch page subscribed to the empty room", func() bool {
		r := n.rooms.Room("truth")
		return r != nil && r.ViewerCount() == 1
	})
	p := waitPage(t, viewer, "the watch page to wait for a broadcast", haloStatsJS, func(p watchPage) bool { return p.State == "waiting" })
	if strings.Contains(p.Receiving, "Receiving") || !p.Placeholder || p.PictureWidth != 0 {
		t.Fatalf("empty room: the page says %q, placeholder %v (%q), picture width %d", p.Receiving, p.Placeholder, p.PlaceholderText, p.PictureWidth)
	}

	capture := goLive(t, live, n, "truth", "")
	var fps float64
	if err := evalJSON(live, `document.getElementById('preview').srcObject.getVideoTracks()[0].getSettings().frameRate`, &fps); err != nil || fps <= 0 {
		t.Fatalf("capture frame rate %v (%v)", fps, err)
	}
	var share string
	if err := evalJSON(live, `document.getElementById('share-link').value`, &share); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(share, "#/watch/truth") || strings.Contains(share, "via=") || strings.Contains(share, "token") {
		t.Fatalf("share link of a WebSocket broadcast: %q", share)
	}
	waitDecoded(t, viewer, capture)
	p = waitPage(t, viewer, "three rate samples on the overlay", haloStatsJS, func(p watchPage) bool { return len(p.Shown) >= 3 })
	if !strings.Contains(p.Receiving, "Receiving") || p.Placeholder || p.PictureWidth != capture.Width {
		t.Fatalf("live: the page says %q, placeholder %v, picture width %d", p.Receiving, p.Placeholder, p.PictureWidth)
	}
	// The camera sends fps frames a second and Chromium's VP8 at this size
	// a few Mbit/s: a rate far beyond either is a measuring error (the first
	// sample used to show 600 fps and 21 Mbit/s).
	for i, s := range p.Shown {
		if s.Ms < 1000 || s.FPS > 1.5*fps+1 || s.Kbps <= 0 || s.Kbps > 8000 {
			t.Errorf("overlay sample %d: %.0f fps, %.0f kbit/s over %.0f ms (camera: %.0f fps)", i, s.FPS, s.Kbps, s.Ms, fps)
		}
	}

	if err := chromedp.Do(live, chromedp.Click(chromedp.ID("stop"))); err != nil {
		t.Fatal(err)
	}
	p = waitPage(t, viewer, "the watch page to show the end", haloStatsJS, func(p watchPage) bool { return p.State == "waiting" })
	if !p.Placeholder || !strings.Contains(p.PlaceholderText, "ended") || p.PictureWidth != 0 || strings.Contains(p.Receiving, "Receiving") {
		t.Fatalf("ended: placeholder %v (%q), picture width %d, the page says %q", p.Placeholder, p.PlaceholderText, p.PictureWidth, p.Receiving)
	}
	assertNoPageProblems(t, b)
}

// A broadcaster who ticked WHIP shares a link that watches over WHEP.
func TestBrowser_WHIPShareLinkWatchesOverWHEP(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Dev = true }) // the shared link carries no token
	b := newBrowser(t)
	home, viewer := b.ctx, b.tab("watch")

	ctx, cancel := context.WithTimeout(home, browserDeadline)
	defer cancel()
	// As a newcomer does it: the home page, WHIP ticked, Go live, Start.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(n.base+"/#/"),
		chromedp.WaitVisible(chromedp.ID("room-input")),
		chromedp.SetValue(chromedp.ID("room-input"), "shared"),
		chromedp.Click(chromedp.ID("use-http")),
		chromedp.Click(chromedp.CSS(`#home-form button[value="live"]`)),
		chromedp.WaitEnabled(chromedp.ID("start")),
		chromedp.Click(chromedp.ID("start")),
	); err != nil {
		t.Fatal(err)
	}
	waitPage(t, home, "the live page to go live over WHIP", `window.haloState || ''`, func(s string) bool { return s == "live" })
	var share string
	if err := evalJSON(home, `document.getElementById('share-link').value`, &share); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(share, "#/watch/shared?via=whep") {
		t.Fatalf("share link of a WHIP broadcast: %q, want it to watch over WHEP", share)
	}
	vctx, vcancel := context.WithTimeout(viewer, browserDeadline)
	defer vcancel()
	if err := chromedp.Do(vctx, chromedp.Navigate(share)); err != nil {
		t.Fatal(err)
	}
	waitPage(t, viewer, "frames at the shared link", haloStatsJS, func(s watchStats) bool { return s.FramesDecoded > 0 })
	var via string
	if err := evalJSON(viewer, `document.getElementById('watch-via').textContent`, &via); err != nil || via != "WHEP" {
		t.Fatalf("the shared link watches over %q (%v), want WHEP", via, err)
	}
	waitViewerCount(t, home, 1)
	assertNoPageProblems(t, b)
}
