package node

import (
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// hlsPlayerPage is a page of another origin that plays a room's LL-HLS with
// the hls.js the node serves (signaling/web/vendor, pinned), as an app or a
// TV's web view would: it reports decoded frames, the playhead and hls.js's
// own latency estimate.
const hlsPlayerPage = `<!doctype html><meta charset="utf-8"><video id="v" muted playsinline></video>
<script src="%[1]s/vendor/hls.min.js"></script>
<script>
window.state = {errors: []};
const v = document.getElementById('v');
const hls = new Hls({lowLatencyMode: true});
hls.on(Hls.Events.ERROR, (e, d) => { if (d.fatal) window.state.errors.push(d.type + ': ' + d.details); });
hls.loadSource('%[1]s/hls/%[2]s/index.m3u8');
hls.attachMedia(v);
hls.on(Hls.Events.MANIFEST_PARSED, () => v.play());
window.report = () => ({
  supported: Hls.isSupported(),
  frames: v.getVideoPlaybackQuality().totalVideoFrames,
  time: v.currentTime,
  width: v.videoWidth,
  latency: hls.latency || 0,
  errors: window.state.errors,
});
</script>`

// Chromium plays an H.264 + Opus broadcast's LL-HLS through the vendored
// hls.js in low-latency mode: frames decode at the stream's size and the
// playhead moves on; hls.js's latency estimate is logged (not asserted:
// tests do not time).
func TestBrowser_HLSPlaysWithVendoredHLSJS(t *testing.T) {
	b := newBrowser(t)
	aus := encodeH264(t, 4)
	n := startNode(t, nil)
	whipPublishH264(t, n, "hlsjs", aus)
	waitTracks(t, n, "hlsjs", 2)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	page := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = fmt.Fprintf(w, hlsPlayerPage, n.base, "hlsjs")
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = page.Serve(ln) }()
	t.Cleanup(func() { _ = page.Close() })

	tab := b.tab("hls")
	if err := chromedp.Do(tab, chromedp.Navigate("http://"+ln.Addr().String()+"/")); err != nil {
		t.Fatal(err)
	}
	type report struct {
		Supported bool     `json:"supported"`
		Frames    int      `json:"frames"`
		Time      float64  `json:"time"`
		Width     int      `json:"width"`
		Latency   float64  `json:"latency"`
		Errors    []string `json:"errors"`
	}
	first := waitPage(t, tab, "hls.js decodes frames", "window.report()", func(r report) bool {
		if len(r.Errors) > 0 || !r.Supported {
			t.Fatalf("hls.js: %+v", r)
		}
		return r.Frames > 30 && r.Width == 320
	})
	later := waitPage(t, tab, "the playhead moves on", "window.report()", func(r report) bool {
		return r.Time > first.Time+2 && len(r.Errors) == 0
	})
	t.Logf("hls.js: %d frames decoded, playhead %.2f s, latency estimate %.2f s", later.Frames, later.Time, later.Latency)
	assertNoPageProblems(t, b)
}
