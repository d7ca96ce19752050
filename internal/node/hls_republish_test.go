package node

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
)

// A broadcaster whose connection drops and who publishes again within
// room.republish_grace keeps its HLS audience on the same muxer: the media
// playlist goes on with the same file names and new segments (players need
// not reload index.m3u8), and no second muxer is started.
func TestHLS_FollowsABroadcasterReconnect(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := loadtest.PublisherConfig{VideoBitrate: testBitrate, Codec: loadtest.CodecH264, KeyframeInterval: time.Second}
	first := n.publisher(ctx, "reh", cfg)
	waitTracks(t, n, "reh", 2)

	status, _, body := get(t, n.base+"/hls/reh/index.m3u8")
	if status != http.StatusOK {
		t.Fatalf("GET index.m3u8: %d %q", status, body)
	}
	var stream string
	for _, l := range strings.Split(body, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			stream = strings.TrimSpace(l)
		}
	}
	media := n.base + "/hls/reh/" + stream
	_, _, mbody := get(t, media)
	before := lastSegment(t, mbody)
	first0 := playlistURIs(mbody)[0]
	prefix := first0[:strings.IndexByte(first0, '_')] // the muxer's own, in every file name

	first.DropConnection()
	second := n.publisher(ctx, "reh", cfg) // the same identity, a new connection
	defer second.Close()

	testutil.Eventually(t, "segments of the republished broadcast", func() bool {
		status, _, b := get(t, media)
		return status == http.StatusOK && lastSegment(t, b) >= before+3
	})
	_, _, after := get(t, media)
	for _, u := range playlistURIs(after) {
		if u != "gap.mp4" && !strings.HasPrefix(u, prefix+"_") {
			t.Errorf("URI %q is not the first muxer's (%s_...)", u, prefix)
		}
	}
	if v, _ := sample(gather(t, n), "halo_hls_muxers_started_total"); v != 1 {
		t.Errorf("%v muxers started, want 1 followed across the reconnect", v)
	}
}
