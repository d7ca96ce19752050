package node

import (
	"strings"
	"testing"
)

// The go-live page's "For HLS / TVs" choice (?codec=h264) puts H.264
// first in the offer: the page sends H.264 and the room's video track is
// H.264, which the room's LL-HLS can carry.
func TestBrowser_GoLiveForHLSSendsH264(t *testing.T) {
	n := startNode(t, nil)
	b := newBrowser(t)
	live := b.ctx

	goLiveQuery(t, live, n, "tvroom", "&codec=h264")
	var checked bool
	if err := evalJSON(live, `document.getElementById('h264-toggle').checked`, &checked); err != nil || !checked {
		t.Fatalf("?codec=h264 does not tick the H.264 choice: %v %v", checked, err)
	}
	codec := waitPage(t, live, "the page to send video", `window.haloSendCodec()`, func(c string) bool { return c != "" })
	if !strings.EqualFold(codec, "video/H264") {
		t.Fatalf("the page sends %s with the H.264 choice on", codec)
	}
	waitTracks(t, n, "tvroom", 2)
	for _, tr := range n.rooms.Room("tvroom").Tracks() {
		if tr.Kind == "video" && !strings.EqualFold(tr.Codec, "video/H264") {
			t.Fatalf("the room's video track is %s", tr.Codec)
		}
	}
	assertNoPageProblems(t, b)
}

// Without the choice the page sends VP8, which HLS cannot carry: the watch
// page's ?via=hls shows the node's reason (415 hls_codec_unsupported), not
// a spinner.
func TestBrowser_WatchPageViaHLSExplainsVP8(t *testing.T) {
	n := startNode(t, nil)
	b := newBrowser(t)
	live, viewer := b.ctx, b.tab("watch")

	goLive(t, live, n, "vp8room", "")
	waitTracks(t, n, "vp8room", 2)
	watchQuery(t, viewer, n, "vp8room", "&via=hls")
	p := waitPage(t, viewer, "the watch page to explain why HLS cannot play", haloStatsJS, func(p hlsWatch) bool { return p.State == "error" })
	var status string
	if err := evalJSON(viewer, watchStatus, &status); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(status, "VP8") || !strings.Contains(status, "H.264") || !p.Placeholder {
		t.Fatalf("status %q, placeholder %v: the page must say the broadcast is VP8 and H.264 is needed", status, p.Placeholder)
	}
	t.Logf("VP8 over ?via=hls: %q", status)
	assertNoPageProblems(t, b)
}
