package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
)

// The browser tests drive the embedded web page in a real headless Chromium
// over the DevTools protocol: its fake camera and microphone publish, a
// second tab watches, and the assertions read what the viewer's decoder saw.

const chromiumPath = "/usr/bin/chromium"

// browserDeadline bounds every wait for something to happen in a page. It is
// a liveness bound, not a timing assertion.
const browserDeadline = 30 * time.Second

// browser is one Chromium process; each tab is a chromedp context. What the
// pages log is printed when a test fails, or always with HALO_BROWSER_LOG=1.
type browser struct {
	t   *testing.T
	ctx context.Context // the first tab, which owns the process

	mu   sync.Mutex
	logs []string // console output and exceptions of every tab
	done bool
}

// newBrowser starts Chromium with a fake camera and microphone. The browser
// is closed, and its process waited for, when the test ends.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("%s is missing (make deps installs it); CI fails here instead", chromiumPath)
		}
		t.Fatalf("%s is missing in CI: %v", chromiumPath, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		// Two tabs play at once: neither may be throttled as a background tab.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("mute-audio", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	b := &browser{t: t, ctx: ctx}
	// Registered after t.TempDir, so it runs first: the profile directory is
	// removed only after the browser has exited.
	t.Cleanup(func() {
		b.mu.Lock()
		b.done = true
		logs := b.logs
		b.mu.Unlock()
		if t.Failed() || os.Getenv("HALO_BROWSER_LOG") != "" {
			for _, l := range logs {
				t.Logf("browser: %s", l)
			}
		}
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		_ = chromedp.Cancel(cctx)
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	b.listen(ctx, "tab0")
	return b
}

// tab opens another tab in the browser; the first call returns the tab the
// browser started with.
func (b *browser) tab(name string) context.Context {
	b.t.Helper()
	b.mu.Lock()
	first := b.ctx
	b.mu.Unlock()
	ctx, cancel := chromedp.NewContext(first)
	b.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("open tab %s: %v", name, err)
	}
	b.listen(ctx, name)
	return ctx
}

// listen records what the page writes to the console, its exceptions and the
// browser's log (CSP violations land there), to print when a test fails.
func (b *browser) listen(ctx context.Context, name string) {
	err := chromedp.Listen(ctx, func(ev any) {
		var line string
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			var parts []string
			for _, a := range e.Args {
				if len(a.Value) > 0 {
					parts = append(parts, string(a.Value))
				} else {
					parts = append(parts, a.Description)
				}
			}
			line = fmt.Sprintf("%s console.%s: %s", name, e.Type, strings.Join(parts, " "))
		case *runtime.EventExceptionThrown:
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			line = fmt.Sprintf("%s EXCEPTION: %s (%s:%d)", name, msg, d.URL, d.LineNumber)
		case *log.EventEntryAdded:
			line = fmt.Sprintf("%s log.%s [%s]: %s", name, e.Entry.Level, e.Entry.Source, e.Entry.Text)
		default:
			return
		}
		b.mu.Lock()
		if !b.done {
			b.logs = append(b.logs, line)
		}
		b.mu.Unlock()
	})
	if err != nil {
		b.t.Fatalf("listen %s: %v", name, err)
	}
}

// pageProblems returns the exceptions and security errors (a blocked resource
// under the Content-Security-Policy) seen so far.
func (b *browser) pageProblems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, l := range b.logs {
		if strings.Contains(l, "EXCEPTION") || strings.Contains(l, "Content Security Policy") || strings.Contains(l, "[security]") {
			out = append(out, l)
		}
	}
	return out
}

// evalJSON evaluates expr in the page (awaiting a promise) into out.
func evalJSON(ctx context.Context, expr string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, out)
}

// waitPage polls expr until cond accepts its value, or fails the test after
// browserDeadline with the last value seen and the page's status line.
func waitPage[T any](t *testing.T, ctx context.Context, what, expr string, cond func(T) bool) T {
	t.Helper()
	deadline := time.Now().Add(browserDeadline)
	var last T
	var lastErr error
	for {
		var v T
		lastErr = evalJSON(ctx, expr, &v)
		if lastErr == nil {
			last = v
			if cond(v) {
				return v
			}
		}
		if time.Now().After(deadline) {
			var status string
			_ = evalJSON(ctx, `(document.querySelector('.view:not([hidden]) .status') || {}).textContent || ''`, &status)
			t.Fatalf("timed out waiting for %s: last value %+v, last error %v, page status %q", what, last, lastErr, status)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// watchStats is what window.haloStats() returns on the watch page.
type watchStats struct {
	FramesDecoded        int      `json:"framesDecoded"`
	FrameWidth           int      `json:"frameWidth"`
	FrameHeight          int      `json:"frameHeight"`
	VideoPacketsReceived int      `json:"videoPacketsReceived"`
	AudioPacketsReceived int      `json:"audioPacketsReceived"`
	FirstFrameMs         *float64 `json:"firstFrameMs"`
	State                string   `json:"state"`
	ICEChecksSent        int      `json:"iceChecksSent"`
	ICEChecksAnswered    int      `json:"iceChecksAnswered"`
	ConnectionState      string   `json:"connectionState"`
}

const haloStatsJS = `window.haloStats ? window.haloStats() : null`

type size struct {
	Width  int `json:"width"`
	Height int `json:"height"`
}

// goLive opens the live page for room (via "" or "whip"), presses Start and
// waits until the page says it is live. It returns the camera's capture size.
func goLive(t *testing.T, tab context.Context, n *testNode, room, via string) size {
	t.Helper()
	query := ""
	if via != "" {
		query = "&via=" + via
	}
	return goLiveQuery(t, tab, n, room, query)
}

// goLiveQuery is goLive with more of the page's parameters (query starts
// with &).
func goLiveQuery(t *testing.T, tab context.Context, n *testNode, room, query string) size {
	t.Helper()
	u := n.base + "/#/live/" + room + "?token=" + n.token(room, "host-"+room, true, false) + query
	ctx, cancel := context.WithTimeout(tab, browserDeadline)
	defer cancel()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(u),
		chromedp.WaitEnabled(chromedp.ID("start")),
		chromedp.Click(chromedp.ID("start")),
	); err != nil {
		t.Fatalf("live page %s: %v", u, err)
	}
	waitPage(t, tab, "the live page to go live", `window.haloState || ''`, func(s string) bool {
		if s == "error" {
			var status string
			_ = evalJSON(tab, `document.getElementById('live-status').textContent`, &status)
			t.Fatalf("live page state error: %s", status)
		}
		return s == "live"
	})
	var capture size
	if err := evalJSON(tab, `(() => {
		const s = document.getElementById('preview').srcObject.getVideoTracks()[0].getSettings();
		return {width: s.width, height: s.height};
	})()`, &capture); err != nil {
		t.Fatalf("read capture size: %v", err)
	}
	if capture.Width == 0 || capture.Height == 0 {
		t.Fatalf("capture size %+v", capture)
	}
	return capture
}

// watch opens the watch page for room (via "" or "whep").
func watch(t *testing.T, tab context.Context, n *testNode, room, via string) {
	t.Helper()
	query := ""
	if via != "" {
		query = "&via=" + via
	}
	watchQuery(t, tab, n, room, query)
}

// watchQuery is watch with more of the page's parameters (query starts with &).
func watchQuery(t *testing.T, tab context.Context, n *testNode, room, query string) {
	t.Helper()
	u := n.base + "/#/watch/" + room + "?token=" + n.token(room, "viewer-"+room, false, true) + query
	ctx, cancel := context.WithTimeout(tab, browserDeadline)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(u), chromedp.WaitVisible(chromedp.ID("player"))); err != nil {
		t.Fatalf("watch page %s: %v", u, err)
	}
}

// waitDecoded waits until the watch page has decoded more than 30 frames at
// the publisher's capture size and has received audio.
func waitDecoded(t *testing.T, tab context.Context, want size) watchStats {
	t.Helper()
	return waitPage(t, tab, fmt.Sprintf("30 decoded frames at %dx%d and audio", want.Width, want.Height), haloStatsJS,
		func(s watchStats) bool {
			return s.FramesDecoded > 30 && s.FrameWidth == want.Width && s.FrameHeight == want.Height && s.AudioPacketsReceived > 0
		})
}

func waitViewerCount(t *testing.T, tab context.Context, want int) {
	t.Helper()
	waitPage(t, tab, fmt.Sprintf("viewer count %d on the live page", want), `window.haloViewerCount ?? -1`,
		func(c int) bool { return c == want })
}

func assertNoPageProblems(t *testing.T, b *browser) {
	t.Helper()
	for _, p := range b.pageProblems() {
		t.Errorf("page problem: %s", p)
	}
}

func TestBrowser_PublishAndWatchOverWebSocket(t *testing.T) {
	n := startNode(t, nil)
	b := newBrowser(t)
	live, viewer := b.ctx, b.tab("watch")

	capture := goLive(t, live, n, "room1", "")
	watch(t, viewer, n, "room1", "")
	st := waitDecoded(t, viewer, capture)
	waitViewerCount(t, live, 1)
	if st.FirstFrameMs != nil {
		t.Logf("websocket first-frame-ms=%.0f (from opening the watch page)", *st.FirstFrameMs)
	}
	// The token given in the link does not stay in the address bar.
	var hash string
	if err := evalJSON(viewer, "location.hash", &hash); err != nil || strings.Contains(hash, "token=") {
		t.Fatalf("address bar still holds the token: %q (%v)", hash, err)
	}

	shot, err := chromedp.Run(viewer, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := filepath.Join("..", "..", "build", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "watch.png"), shot, 0o644); err != nil {
		t.Fatal(err)
	}
	assertNoPageProblems(t, b)
}

func TestBrowser_PublishWHIPWatchWHEP(t *testing.T) {
	n := startNode(t, nil)
	b := newBrowser(t)
	live, viewer := b.ctx, b.tab("watch")

	capture := goLive(t, live, n, "room2", "whip")
	watch(t, viewer, n, "room2", "whep")
	st := waitDecoded(t, viewer, capture)
	if st.FirstFrameMs == nil {
		t.Fatalf("the watch page decoded frames but recorded no first frame: %+v", st)
	}
	// WHEP POST to the first decoded frame, for docs/benchmarks.md.
	t.Logf("first-frame-ms=%.0f", *st.FirstFrameMs)
	waitViewerCount(t, live, 1)
	assertNoPageProblems(t, b)
}

// A browser's WHEP connection handed over from Pion (sfu/handoff.go): the
// page keeps decoding, its consent checks keep being answered, and its
// connection stays connected.
func TestBrowser_WHEPViewerHandedOverKeepsPlaying(t *testing.T) {
	n := startNode(t, nil)
	b := newBrowser(t)
	live, viewer := b.ctx, b.tab("watch")

	capture := goLive(t, live, n, "handoff", "whip")
	watch(t, viewer, n, "handoff", "whep")
	waitDecoded(t, viewer, capture)
	testutil.Eventually(t, "the WHEP viewer's connection handed over from Pion", func() bool { return n.engine.Stats().HandedOver >= 1 })
	at := waitPage(t, viewer, "the page's stats", haloStatsJS, func(s watchStats) bool { return s.State != "" })
	st := waitPage(t, viewer, "consent checks answered and frames decoded after the hand-over", haloStatsJS, func(s watchStats) bool {
		return s.ICEChecksAnswered >= at.ICEChecksAnswered+3 && s.FramesDecoded >= at.FramesDecoded+60
	})
	// Every check answered, but those in flight when the page was asked.
	if sent, answered := st.ICEChecksSent-at.ICEChecksSent, st.ICEChecksAnswered-at.ICEChecksAnswered; answered < sent-2 {
		t.Fatalf("after the hand-over the page sent %d ICE checks and had %d answered", sent, answered)
	}
	if st.ConnectionState != "connected" || st.State != "live" {
		t.Fatalf("after the hand-over the page's connection is %q, its state %q", st.ConnectionState, st.State)
	}
	t.Logf("after the hand-over: checks %d -> %d sent, %d -> %d answered; frames %d -> %d",
		at.ICEChecksSent, st.ICEChecksSent, at.ICEChecksAnswered, st.ICEChecksAnswered, at.FramesDecoded, st.FramesDecoded)
	assertNoPageProblems(t, b)
}

func TestBrowser_WHIPPublisherSeenByLoadtestViewer(t *testing.T) {
	n := startNode(t, nil)
	b := newBrowser(t)
	goLive(t, b.ctx, n, "room3", "whip")

	ctx, cancel := context.WithTimeout(context.Background(), browserDeadline)
	defer cancel()
	v := n.viewer(ctx, "room3", "loadtest-viewer")
	if err := v.WaitTracks(ctx, 2); err != nil {
		t.Fatalf("loadtest viewer: %v (stats %+v)", err, v.Stats())
	}
	testutil.Eventually(t, "100 video packets at the loadtest viewer", func() bool { return v.Stats().VideoPackets > 100 })
	assertNoPageProblems(t, b)
}

func TestBrowser_LoadtestPublisherSeenByWHEPViewer(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*browserDeadline)
	defer cancel()
	n.publisher(ctx, "room4", loadtest.PublisherConfig{VideoBitrate: 500_000})
	b := newBrowser(t)

	watch(t, b.ctx, n, "room4", "whep")
	// The synthetic VP8 frames do not decode: count packets instead.
	waitPage(t, b.ctx, "100 video and 100 audio packets at the WHEP page", haloStatsJS, func(s watchStats) bool {
		return s.VideoPacketsReceived > 100 && s.AudioPacketsReceived > 100
	})
	assertNoPageProblems(t, b)
}

// TestBrowser_WatchPageFollowsStopAndRestart stops and restarts the
// broadcast: the watch page says it is waiting, then plays the new broadcast
// on its open connection.
func TestBrowser_WatchPageFollowsStopAndRestart(t *testing.T) {
	n := startNode(t, nil)
	b := newBrowser(t)
	live, viewer := b.ctx, b.tab("watch")

	capture := goLive(t, live, n, "room5", "")
	watch(t, viewer, n, "room5", "")
	waitDecoded(t, viewer, capture)

	if err := chromedp.Do(live, chromedp.Click(chromedp.ID("stop"))); err != nil {
		t.Fatal(err)
	}
	waitPage(t, live, "the live page to stop", `window.haloState || ''`, func(s string) bool { return s == "idle" })
	waitPage(t, viewer, "the watch page to wait", haloStatsJS, func(s watchStats) bool { return s.State == "waiting" })

	if err := chromedp.Do(live, chromedp.WaitEnabled(chromedp.ID("start")), chromedp.Click(chromedp.ID("start"))); err != nil {
		t.Fatal(err)
	}
	waitPage(t, live, "the live page to go live again", `window.haloState || ''`, func(s string) bool { return s == "live" })
	waitDecoded(t, viewer, capture)
	waitPage(t, viewer, "the watch page to be live again", haloStatsJS, func(s watchStats) bool { return s.State == "live" })
	waitViewerCount(t, live, 1)
	assertNoPageProblems(t, b)
}

// TestBrowser_DevModeHandsOutTokens opens both pages without a token: a node
// in dev mode gives the page one from /dev/token.
func TestBrowser_DevModeHandsOutTokens(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Dev = true })
	b := newBrowser(t)
	live, viewer := b.ctx, b.tab("watch")

	ctx, cancel := context.WithTimeout(live, browserDeadline)
	defer cancel()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(n.base+"/#/live/devroom"),
		chromedp.WaitEnabled(chromedp.ID("start")),
		chromedp.Click(chromedp.ID("start")),
	); err != nil {
		t.Fatal(err)
	}
	waitPage(t, live, "the live page to go live", `window.haloState || ''`, func(s string) bool { return s == "live" })
	vctx, vcancel := context.WithTimeout(viewer, browserDeadline)
	defer vcancel()
	if err := chromedp.Do(vctx, chromedp.Navigate(n.base+"/#/watch/devroom")); err != nil {
		t.Fatal(err)
	}
	waitPage(t, viewer, "frames and audio at the watch page", haloStatsJS, func(s watchStats) bool {
		return s.FramesDecoded > 0 && s.AudioPacketsReceived > 0
	})
	waitViewerCount(t, live, 1)
	assertNoPageProblems(t, b)
}

// TestBrowser_MissingTokenIsExplained opens the watch page of a node that is
// not in dev mode without a token: the page says what to do.
func TestBrowser_MissingTokenIsExplained(t *testing.T) {
	n := startNode(t, nil)
	b := newBrowser(t)
	ctx, cancel := context.WithTimeout(b.ctx, browserDeadline)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(n.base+"/#/watch/room6")); err != nil {
		t.Fatal(err)
	}
	type page struct {
		State  string `json:"state"`
		Status string `json:"status"`
	}
	const pageJS = `(async () => ({
		state: window.haloStats ? (await window.haloStats()).state : '',
		status: document.getElementById('watch-status').textContent,
	}))()`
	p := waitPage(t, b.ctx, "the error state", pageJS, func(p page) bool { return p.State == "error" })
	if !strings.Contains(p.Status, "No access token") || !strings.Contains(p.Status, "?token=") {
		t.Errorf("status %q does not explain the missing token", p.Status)
	}
	// A forged token is refused by the server, and the page says why.
	if err := chromedp.Do(ctx, chromedp.Navigate(n.base+"/#/watch/room6?token=not-a-token")); err != nil {
		t.Fatal(err)
	}
	p = waitPage(t, b.ctx, "the error state of the forged token", pageJS, func(p page) bool {
		return p.State == "error" && !strings.Contains(p.Status, "No access token")
	})
	if !strings.Contains(p.Status, "token") {
		t.Errorf("status %q does not mention the token", p.Status)
	}
	t.Logf("forged token: %q", p.Status)
}

// TestBrowser_PageServedWithHeaders checks what the browser relies on: types
// that are not sniffed, revalidation, and a Content-Security-Policy that only
// lets the page talk to its own node.
func TestBrowser_PageServedWithHeaders(t *testing.T) {
	n := startNode(t, nil)
	cases := []struct {
		path, method string
		status       int
		ctype        string
	}{
		{"/", http.MethodGet, 200, "text/html; charset=utf-8"},
		{"/index.html", http.MethodGet, 200, "text/html; charset=utf-8"},
		{"/app.js", http.MethodGet, 200, "text/javascript; charset=utf-8"},
		{"/halo-client.js", http.MethodGet, 200, "text/javascript; charset=utf-8"},
		{"/live.js", http.MethodGet, 200, "text/javascript; charset=utf-8"},
		{"/watch.js", http.MethodGet, 200, "text/javascript; charset=utf-8"},
		{"/page.js", http.MethodGet, 200, "text/javascript; charset=utf-8"},
		{"/style.css", http.MethodGet, 200, "text/css; charset=utf-8"},
		{"/favicon.svg", http.MethodGet, 200, "image/svg+xml"},
		{"/app.js", http.MethodHead, 200, "text/javascript; charset=utf-8"},
		{"/nope.js", http.MethodGet, 404, ""},
		{"/", http.MethodPost, 405, ""},
	}
	for _, c := range cases {
		req, err := http.NewRequest(c.method, n.base+c.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", c.method, c.path, err)
		}
		_ = res.Body.Close()
		if res.StatusCode != c.status {
			t.Errorf("%s %s: status %d, want %d", c.method, c.path, res.StatusCode, c.status)
			continue
		}
		if c.status != 200 {
			continue
		}
		h := res.Header
		if got := h.Get("Content-Type"); got != c.ctype {
			t.Errorf("%s: Content-Type %q, want %q", c.path, got, c.ctype)
		}
		if got := h.Get("Cache-Control"); got != "no-cache" {
			t.Errorf("%s: Cache-Control %q, want no-cache", c.path, got)
		}
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "connect-src 'self' ws: wss:", "media-src 'self' blob:"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: Content-Security-Policy %q lacks %q", c.path, csp, want)
			}
		}
		// Scripts, styles and media come from the node alone; only
		// connections may go elsewhere: to the other nodes of the cluster
		// (a drain's 307, a region redirect), which the page cannot list
		// ahead (they start and stop during a rolling restart).
		directives := map[string]string{}
		for _, d := range strings.Split(csp, ";") {
			name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
			directives[name] = value
		}
		if strings.Contains(csp, "unsafe-") || directives["default-src"] != "'self'" ||
			directives["connect-src"] != "'self' ws: wss: http: https:" {
			t.Errorf("%s: Content-Security-Policy %q allows more than the node (and the cluster's nodes to connect to)", c.path, csp)
		}
		for name, value := range directives {
			if name != "connect-src" && (strings.Contains(value, "http") || strings.Contains(value, "ws")) {
				t.Errorf("%s: Content-Security-Policy's %s %q allows another origin", c.path, name, value)
			}
		}
		if h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q", c.path, h.Get("X-Content-Type-Options"))
		}
	}
	// A revalidation with the ETag costs no body.
	res, err := http.Get(n.base + "/app.js")
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	req, _ := http.NewRequest(http.MethodGet, n.base+"/app.js", nil)
	req.Header.Set("If-None-Match", res.Header.Get("ETag"))
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation with the ETag: status %d, want 304", res.StatusCode)
	}
}
