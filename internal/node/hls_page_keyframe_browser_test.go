package node

import (
	"net/http"
	"strings"
	"testing"
)

// A Chromium broadcast sent in H.264 from the go-live page's "For HLS /
// TVs" choice is readable by the LL-HLS output: a browser's encoder sends
// a keyframe only when asked, so the muxer asks each segment_duration (else
// its first segment never ends: 503 hls_starting). The playlist answers
// 200, ffprobe reads h264 and opus, and the watch page's ?via=hls plays it
// at the camera's size.
func TestBrowser_GoLiveH264ReadByHLS(t *testing.T) {
	n := startNode(t, nil)
	b := newBrowser(t)
	live, viewer := b.ctx, b.tab("watch")

	capture := goLiveQuery(t, live, n, "tvroom", "&codec=h264")
	waitTracks(t, n, "tvroom", 2)
	if status, _, body := get(t, n.base+"/hls/tvroom/index.m3u8"); status != http.StatusOK {
		t.Fatalf("GET /hls/tvroom/index.m3u8: %d %q", status, body)
	}
	streams := ffprobeStreams(t, n.base+"/hls/tvroom/index.m3u8")
	if !contains(streams, "video/h264") || !contains(streams, "audio/opus") {
		t.Fatalf("ffprobe reads %v from the page's H.264 broadcast", streams)
	}
	watchQuery(t, viewer, n, "tvroom", "&via=hls")
	p := waitPage(t, viewer, "the watch page to play the page's broadcast over LL-HLS", haloStatsJS, func(p hlsWatch) bool {
		return p.FramesDecoded > 30 && p.FrameWidth == capture.Width && p.FrameHeight == capture.Height && p.LatencyMs != nil
	})
	if !strings.Contains(p.TransportShown, "LL-HLS") {
		t.Fatalf("transport shown %q", p.TransportShown)
	}
	t.Logf("Chromium's H.264 over LL-HLS: %dx%d, %d frames, latency %.0f ms", p.FrameWidth, p.FrameHeight, p.FramesDecoded, *p.LatencyMs)
	assertNoPageProblems(t, b)
}
