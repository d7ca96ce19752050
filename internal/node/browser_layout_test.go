package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/halobuzz/live/internal/testutil"
)

// box is an element's bounding box in page coordinates (CSS pixels from
// the top left of the document), or nil when it is not shown.
type box struct {
	Top, Bottom, Left, Right float64
}

func (b *box) String() string {
	if b == nil {
		return "not shown"
	}
	return fmt.Sprintf("[%.0f..%.0f]x[%.0f..%.0f]", b.Left, b.Right, b.Top, b.Bottom)
}

func (b *box) intersects(o *box) bool {
	return b != nil && o != nil && b.Left < o.Right && o.Left < b.Right && b.Top < o.Bottom && o.Top < b.Bottom
}

// pageLayout is where the page shows its status, the stats overlay and the
// ended message, against the viewport as the page opened (not scrolled).
type pageLayout struct {
	VW, VH     float64
	Status     *box
	StatusText string
	StatusKind string
	Stats      *box
	Message    *box // the placeholder's text ("The broadcast has ended.")
	Stage      *box
}

// layoutJS reads the layout of the view whose status element is statusID.
const layoutJS = `((statusID) => {
	const at = (id) => {
		const e = document.getElementById(id);
		if (!e || e.closest('[hidden]') || !e.getClientRects().length) return null;
		const r = e.getBoundingClientRect();
		return {Top: r.top + scrollY, Bottom: r.bottom + scrollY, Left: r.left + scrollX, Right: r.right + scrollX};
	};
	const s = document.getElementById(statusID);
	const stage = s.closest('.view').querySelector('.stage');
	const r = stage.getBoundingClientRect();
	return {
		VW: document.documentElement.clientWidth, VH: innerHeight,
		Status: at(statusID), StatusText: s.textContent, StatusKind: s.className,
		Stats: statusID === 'watch-status' ? at('stats') : null,
		Message: statusID === 'watch-status' ? at('placeholder-text') : null,
		Stage: {Top: r.top + scrollY, Bottom: r.bottom + scrollY, Left: r.left + scrollX, Right: r.right + scrollX},
	};
})`

func readLayout(t *testing.T, tab context.Context, statusID string) pageLayout {
	t.Helper()
	var l pageLayout
	if err := evalJSON(tab, layoutJS+"('"+statusID+"')", &l); err != nil {
		t.Fatalf("read layout: %v", err)
	}
	return l
}

// assertAboveTheFold fails unless the status is shown, says something, and
// lies within the viewport as the page opened, under the picture.
func assertAboveTheFold(t *testing.T, what string, l pageLayout) {
	t.Helper()
	s := l.Status
	if s == nil || strings.TrimSpace(l.StatusText) == "" {
		t.Errorf("%s: status %v %q, want it shown with a text", what, s, l.StatusText)
		return
	}
	if s.Top < 0 || s.Left < 0 || s.Bottom > l.VH || s.Right > l.VW {
		t.Errorf("%s: status %q at %v, outside the %.0fx%.0f viewport (below the fold)", what, l.StatusText, s, l.VW, l.VH)
	}
	if s.Top < l.Stage.Bottom || s.Top > l.Stage.Bottom+40 {
		t.Errorf("%s: status at %v, not right under the picture %v", what, s, l.Stage)
	}
}

// screenshot writes the tab's viewport to name in the test's output
// directory (go test -artifacts -outputdir DIR keeps it).
func screenshot(t *testing.T, tab context.Context, name string) {
	t.Helper()
	shot, err := chromedp.Run(tab, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(t.ArtifactDir(), name)
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", path)
}

// Status and errors sit next to the player, above the fold, at 390x844 (a
// phone) and at 1280x800: while waiting for a broadcast, live, after it
// ended and on an error, on the watch page and on the live page. On the
// phone the stats, opened, do not cover the ended message.
func TestBrowserPage_StatusAboveTheFoldOnPhoneAndDesktop(t *testing.T) {
	n := startNode(t, nil)
	b := newBrowser(t)
	live, desk, phone := b.ctx, b.tab("desktop"), b.tab("phone")
	if err := chromedp.Do(phone, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	const room = "fold"
	watch(t, phone, n, room, "")
	watch(t, desk, n, room, "")
	for _, tab := range []context.Context{phone, desk} {
		waitPage(t, tab, "the watch page to wait for a broadcast", haloStatsJS, func(p watchPage) bool { return p.State == "waiting" })
	}
	l := readLayout(t, phone, "watch-status")
	if l.VW != 390 || l.VH != 844 {
		t.Fatalf("phone viewport %.0fx%.0f, want 390x844", l.VW, l.VH)
	}
	assertAboveTheFold(t, "phone, waiting", l)
	assertAboveTheFold(t, "desktop, waiting", readLayout(t, desk, "watch-status"))
	screenshot(t, phone, "phone-watch-waiting.png")

	capture := goLive(t, live, n, room, "")
	assertAboveTheFold(t, "desktop live page, live", readLayout(t, live, "live-status"))
	waitDecoded(t, phone, capture)
	// The stats start folded on a phone: open them.
	if err := chromedp.Do(phone, chromedp.Click(chromedp.ID("stats-toggle"))); err != nil {
		t.Fatal(err)
	}
	l = readLayout(t, phone, "watch-status")
	if l.Stats == nil {
		t.Fatal("phone: the stats did not open")
	}
	assertAboveTheFold(t, "phone, live", l)
	screenshot(t, phone, "phone-watch-live.png")

	if err := chromedp.Do(live, chromedp.Click(chromedp.ID("stop"))); err != nil {
		t.Fatal(err)
	}
	for _, tab := range []context.Context{phone, desk} {
		waitPage(t, tab, "the watch page to show the end", haloStatsJS, func(p watchPage) bool {
			return p.State == "waiting" && strings.Contains(p.PlaceholderText, "ended")
		})
	}
	l = readLayout(t, phone, "watch-status")
	assertAboveTheFold(t, "phone, ended", l)
	if l.Message == nil || l.Stats == nil || l.Message.intersects(l.Stats) {
		t.Errorf("phone, ended: the stats %v cover the ended message %v", l.Stats, l.Message)
	}
	if m := l.Message; m == nil || m.Top < 0 || m.Bottom > l.VH {
		t.Errorf("phone, ended: the ended message at %v, not in the viewport", m)
	}
	screenshot(t, phone, "phone-watch-ended.png")
	d := readLayout(t, desk, "watch-status")
	assertAboveTheFold(t, "desktop, ended", d)
	if d.Message.intersects(d.Stats) {
		t.Errorf("desktop, ended: the stats %v cover the ended message %v", d.Stats, d.Message)
	}
	screenshot(t, desk, "desktop-watch-ended.png")

	// The live page on the phone.
	goLive(t, phone, n, "fold-phone", "")
	assertAboveTheFold(t, "phone live page, live", readLayout(t, phone, "live-status"))
	screenshot(t, phone, "phone-live.png")

	// An error (a token the server refuses) is shown in the same place.
	if err := chromedp.Do(phone, chromedp.Navigate(n.base+"/#/watch/"+room+"?token=not-a-token")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the refused token's error on the phone", func() bool {
		return strings.Contains(readLayout(t, phone, "watch-status").StatusKind, "error")
	})
	l = readLayout(t, phone, "watch-status")
	assertAboveTheFold(t, "phone, error", l)
	screenshot(t, phone, "phone-watch-error.png")
	t.Logf("phone error status: %q", l.StatusText)
}
