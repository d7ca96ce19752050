package node

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
)

// Any node of the cluster serves a room's LL-HLS: b, where nothing is
// published, pulls the broadcast from a over the cluster's relay (one copy
// per track, as for WebRTC viewers) and ffprobe reads h264 and opus from
// b; once b's muxer is unwatched, b lets go of the relay and a stops
// sending.
func TestHLS_AnyNodeServesTheRoom(t *testing.T) {
	aus := encodeH264(t, 2)
	r := testutil.StartRedis(t)
	secret := strings.Repeat("h5", 20)
	a := startClusterNode(t, r, "node-a", "eu", secret)
	b := startNode(t, func(c *config.Config) {
		clusterConfig(t, c, r, "node-b", "in", secret)
		c.HLS.IdleTimeout = 5 * time.Second
		c.Cluster.RelayGrace = time.Second
	})
	whipPublishH264(t, a, "far", aus)
	waitTracks(t, a, "far", 2)

	index := b.base + "/hls/far/index.m3u8"
	if status, _, body := get(t, index); status != http.StatusOK || !strings.HasPrefix(body, "#EXTM3U") {
		t.Fatalf("GET index.m3u8 on b: %d %q", status, body)
	}
	if s := a.engine.Stats(); s.RelayTracksOut != 2 {
		t.Errorf("a sends %d track copies to b, want 2", s.RelayTracksOut)
	}
	if codecs := ffprobeStreams(t, index); !contains(codecs, "video/h264") || !contains(codecs, "audio/opus") {
		t.Fatalf("ffprobe on b found %v, want video/h264 and audio/opus", codecs)
	}
	if status, _, body := get(t, a.base+"/hls/far/index.m3u8"); status != http.StatusOK {
		t.Fatalf("GET index.m3u8 on a: %d %q", status, body)
	}
	testutil.Eventually(t, "b let go of the relay once unwatched", func() bool { return a.engine.Stats().RelayTracksOut == 0 })
}
