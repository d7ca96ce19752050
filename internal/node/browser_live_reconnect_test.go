package node

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
)

// The live page goes live again by itself when its broadcast is lost
// without the user's Stop. Here its node drains: the drain ends the page's
// WHIP session (DTLS close_notify), the page POSTs again at once, the
// draining node answers 307 to the other node, and the page is live there;
// a viewer on the other node keeps receiving. (Tried as a new user with the
// README's three nodes, the page stayed "failed" after its node paused,
// and its audience waited for good.)
func TestBrowser_LivePageGoesLiveAgainWhenItsNodeDrains(t *testing.T) {
	if testing.Short() {
		t.Skip("a two-node drain in a browser")
	}
	r := testutil.StartRedis(t)
	secret := strings.Repeat("e5", 20)
	aOrigin := "http://127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
	a := startNode(t, func(c *config.Config) {
		clusterConfig(t, c, r, "node-a", "eu", secret)
		c.HTTP.Listen = strings.TrimPrefix(aOrigin, "http://")
	})
	b := startNode(t, func(c *config.Config) {
		clusterConfig(t, c, r, "node-b", "eu", secret)
		c.HTTP.AllowedOrigins = []string{aOrigin}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const room = "live-page-drain"
	br := newBrowser(t)
	goLive(t, br.ctx, a, room, "whip")
	testutil.Eventually(t, "a publishes the page's broadcast", func() bool { return a.engine.Stats().Publishers == 1 })
	v := b.viewer(ctx, room, "viewer-on-b")
	if err := v.WaitTracks(ctx, 2); err != nil {
		t.Fatal(err)
	}

	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer dcancel()
	drained := make(chan error, 1)
	start := time.Now()
	go func() { drained <- a.server.Drain(dctx) }()
	waitPage(t, br.ctx, "the page live again, on b", `window.haloState || ''`, func(s string) bool {
		return s == "live" && b.rooms.Stats().Publishers == 1 && a.rooms.Stats().Publishers == 0
	})
	t.Logf("the page was live on b %v after the drain started", time.Since(start).Round(time.Millisecond))
	if err := <-drained; err != nil {
		t.Fatalf("drain: %v", err)
	}
	got := v.Stats().VideoPackets
	testutil.Eventually(t, "the viewer on b receives the page's video again", func() bool { return v.Stats().VideoPackets > got+50 })
	assertNoPageProblems(t, br)
}
