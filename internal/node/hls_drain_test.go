package node

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
)

// A node told to stop while an LL-HLS player holds a blocking playlist
// request (its broadcaster's connection was lost: the muxer waits for a
// republish and cannot answer) drains cleanly: the request is answered and
// Shutdown returns within its deadline.
func TestHLS_ShutdownAnswersHeldPlaylistRequests(t *testing.T) {
	aus := encodeH264(t, 2)
	cfg := testutil.NodeConfig()
	cfg.Room.RepublishGrace = time.Minute // longer than the shutdown's deadline
	n := newStartedNode(t, cfg, slog.New(slog.DiscardHandler))
	pub := whipPublishH264(t, n, "held", aus)
	waitTracks(t, n, "held", 2)
	status, _, body := get(t, n.base+"/hls/held/index.m3u8")
	if status != http.StatusOK {
		t.Fatalf("GET index.m3u8: %d %q", status, body)
	}
	var stream string
	for _, l := range strings.Split(body, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			stream = strings.TrimSpace(l)
		}
	}
	_, _, mbody := get(t, n.base+"/hls/held/"+stream)
	// The broadcaster's connection is lost: the room keeps its tracks for
	// room.republish_grace, the muxer waits for them, and nothing new comes.
	pub.close()
	held := n.base + "/hls/held/" + stream + "?_HLS_msn=" + strconv.Itoa(lastSegment(t, mbody)+2)
	answered := make(chan int, 1)
	go func() {
		resp, err := http.Get(held)
		if err != nil {
			answered <- -1
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	time.Sleep(500 * time.Millisecond) // the request is held by now
	select {
	case s := <-answered:
		t.Fatalf("the blocking request was answered (%d) before the shutdown", s)
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a held HLS request: %v", err)
	}
	if s := <-answered; s == http.StatusOK {
		t.Errorf("the held request got a playlist (%d), want an error", s)
	}
}

// A broadcast whose encoder stalls (its connection stays up, nothing comes)
// does not hold players' blocking requests for ever: after
// hls.stall_timeout the muxer stops and answers them (players asking all
// the while, it would never be idle).
func TestHLS_StalledBroadcastReleasesHeldRequests(t *testing.T) {
	aus := encodeH264(t, 2)
	n := startNode(t, func(c *config.Config) { c.HLS.StallTimeout, c.HLS.IdleTimeout = 5*time.Second, time.Hour })
	pub := whipPublishH264(t, n, "stall", aus)
	waitTracks(t, n, "stall", 2)
	status, _, body := get(t, n.base+"/hls/stall/index.m3u8")
	if status != http.StatusOK {
		t.Fatalf("GET index.m3u8: %d %q", status, body)
	}
	var stream string
	for _, l := range strings.Split(body, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			stream = strings.TrimSpace(l)
		}
	}
	_, _, mbody := get(t, n.base+"/hls/stall/"+stream)
	close(pub.stop) // the encoder stalls; the connection stays up
	<-pub.done
	held := n.base + "/hls/stall/" + stream + "?_HLS_msn=" + strconv.Itoa(lastSegment(t, mbody)+2)
	answered := make(chan int, 1)
	go func() {
		resp, err := http.Get(held)
		if err != nil {
			answered <- -1
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	select {
	case s := <-answered:
		if s == http.StatusOK {
			t.Errorf("the held request got a playlist of a stalled broadcast")
		}
	case <-time.After(time.Minute):
		t.Fatal("the held request was never answered")
	}
	if v, _ := sample(gather(t, n), "halo_hls_muxers"); v != 0 {
		t.Errorf("halo_hls_muxers %v after the stall, want 0", v)
	}
}
