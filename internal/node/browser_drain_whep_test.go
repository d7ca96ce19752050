package node

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	"github.com/pion/webrtc/v4"
)

// whepPageStats is what window.haloStats() returns on the watch page played
// over WHEP: the counters of the current connection, and which session it is.
type whepPageStats struct {
	VideoPacketsReceived int    `json:"videoPacketsReceived"`
	AudioPacketsReceived int    `json:"audioPacketsReceived"`
	ConnectionState      string `json:"connectionState"`
	State                string `json:"state"`
	Sessions             int    `json:"sessions"`
	Session              string `json:"session"`
}

// hostOf is the host:port of a URL ("" if it is not one).
func hostOf(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	return u.Host
}

// The embedded WHEP player (/#/watch/{room}?via=whep) in a real Chromium
// watches a broadcast on node a, relayed from node b where it is published.
// a drains: its WHEP session ends (RTCP BYE, DTLS close_notify), the page
// POSTs again to a, is sent by a 307 to b (another origin: another port),
// re-sends its token there, and receives the broadcast from b within 3 s of
// the drain's start, on the same page (no reload). b allows a's origin
// only.
func TestBrowser_WHEPPageFollowsADrain(t *testing.T) {
	if testing.Short() {
		t.Skip("a two-node drain in a browser")
	}
	r := testutil.StartRedis(t)
	secret := strings.Repeat("d7", 20)
	// b allows the origin of a's page and no other: the POST that a's 307
	// sends there (with a preflight) must come from that origin, not
	// "null", and nothing broader than http.allowed_origins is needed.
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
	const room = "whep-page-drain"
	b.publisher(ctx, room, loadtest.PublisherConfig{VideoBitrate: 300_000})
	testutil.Eventually(t, "b publishes the broadcast", func() bool { return b.engine.Stats().Publishers == 1 })

	br := newBrowser(t)
	watch(t, br.ctx, a, room, "whep")
	// a answers 404 until it has learnt b's tracks through Redis; the page
	// looks again every 5 s. The synthetic VP8 frames do not decode: count
	// packets.
	before := waitPage(t, br.ctx, "the WHEP page receiving from a", haloStatsJS, func(s whepPageStats) bool {
		return s.VideoPacketsReceived > 50 && s.AudioPacketsReceived > 50 && hostOf(s.Session) == hostOf(a.base)
	})
	testutil.Eventually(t, "the page's connection handed over from Pion on a", func() bool { return a.engine.Stats().HandedOver >= 1 })
	// A mark in the page's JavaScript state: a reload would lose it.
	var mark string
	if err := evalJSON(br.ctx, `window.haloNoReload = 'same page'`, &mark); err != nil {
		t.Fatal(err)
	}

	dctx, dcancel := context.WithTimeout(ctx, 20*time.Second)
	defer dcancel()
	start := time.Now()
	drained := make(chan error, 1)
	go func() { drained <- a.server.Drain(dctx) }()

	// What the page reports, polled: its session is on b and packets arrive
	// on it. The time is taken when the page is seen so, an upper bound.
	var seen []string
	var after whepPageStats
	var playedAt time.Duration
	for {
		var s whepPageStats
		if err := evalJSON(br.ctx, haloStatsJS, &s); err == nil {
			line := fmt.Sprintf("%s session %d on %s %s: %d video, %d audio packets", s.State, s.Sessions, hostOf(s.Session), s.ConnectionState, s.VideoPacketsReceived, s.AudioPacketsReceived)
			if len(seen) == 0 || seen[len(seen)-1][strings.Index(seen[len(seen)-1], " ")+1:] != line {
				seen = append(seen, fmt.Sprintf("%v %s", time.Since(start).Round(time.Millisecond), line))
			}
			if hostOf(s.Session) == hostOf(b.base) && s.VideoPacketsReceived > 0 && s.AudioPacketsReceived > 0 {
				after, playedAt = s, time.Since(start)
				break
			}
		}
		if time.Since(start) > browserDeadline {
			t.Fatalf("the page does not play from b %v after a's drain started; what it reported:\n%s", browserDeadline, strings.Join(seen, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("the page plays from b %v after the drain started; what it reported:\n%s", playedAt.Round(time.Millisecond), strings.Join(seen, "\n"))
	if playedAt > 3*time.Second {
		t.Errorf("the page played again from b %v after the drain started, want within 3 s", playedAt.Round(time.Millisecond))
	}
	if after.Sessions != before.Sessions+1 {
		t.Errorf("the page had %d sessions before the drain and %d after, want one more", before.Sessions, after.Sessions)
	}
	if err := evalJSON(br.ctx, `window.haloNoReload || ''`, &mark); err != nil || mark != "same page" {
		t.Errorf("the page was reloaded (mark %q, %v)", mark, err)
	}
	waitPage(t, br.ctx, "the WHEP page live on b", haloStatsJS, func(s whepPageStats) bool {
		return s.State == "live" && s.ConnectionState == "connected" && s.VideoPacketsReceived > after.VideoPacketsReceived+50
	})
	if err := <-drained; err != nil {
		t.Fatalf("drain: %v", err)
	}
	assertNoPageProblems(t, br)
}

// The embedded WHEP player refused with 429 too_many_pending (its address
// has limits.pending_sessions_per_ip sessions whose connection is not up)
// waits what Retry-After says, again and again rather than giving up after
// a few tries, and plays as soon as a place is free.
func TestBrowser_WHEPPageWaitsForRetryAfter(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Limits.PendingSessionsPerIP = 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const room = "whep-page-429"
	n.publisher(ctx, room, loadtest.PublisherConfig{VideoBitrate: 300_000})
	testutil.Eventually(t, "the broadcast is published", func() bool { return n.engine.Stats().Publishers == 1 })

	// A session that never starts ICE holds the only place of 127.0.0.1.
	pc := newTestPC(t)
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	offer := testutil.LocalOffer(t, pc)
	_ = pc.Close()
	token := n.token(room, "never-connects", false, true)
	resp := doHTTP(t, "POST", n.base+"/whep/"+room, token, "application/sdp", offer, nil)
	loc, err := resp.Location()
	if resp.StatusCode != http.StatusCreated || err != nil {
		t.Fatalf("the waiting session: WHEP %d (Location %v)", resp.StatusCode, err)
	}
	if resp := doHTTP(t, "POST", n.base+"/whep/"+room, token, "application/sdp", offer, nil); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" {
		t.Fatalf("a second session from 127.0.0.1: WHEP %d, Retry-After %q; want 429 and 2", resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	br := newBrowser(t)
	watch(t, br.ctx, n, room, "whep")
	type wait struct {
		Code string `json:"code"`
		Ms   int    `json:"ms"`
	}
	type page struct {
		whepPageStats
		Waits []wait `json:"waits"`
	}
	// Two refusals, each waited for as long as Retry-After said (a
	// backoff of its own would wait 1 s, then 2, 4 and 8, then give up).
	p := waitPage(t, br.ctx, "the page refused twice", haloStatsJS, func(p page) bool { return len(p.Waits) >= 2 || p.VideoPacketsReceived > 0 })
	if p.VideoPacketsReceived > 0 || p.State == "error" {
		t.Fatalf("the page played (or gave up) while the only place was taken: %+v", p)
	}
	for _, w := range p.Waits {
		if w.Code != "too_many_pending" || w.Ms != 2000 {
			t.Fatalf("the page waited %+v, want too_many_pending for 2000 ms (Retry-After: 2) each time", p.Waits)
		}
	}
	// The place is given back: the page plays at its next try.
	if resp := doHTTP(t, "DELETE", loc.String(), token, "", "", nil); resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE the waiting session: %d", resp.StatusCode)
	}
	p = waitPage(t, br.ctx, "the WHEP page receiving", haloStatsJS, func(p page) bool {
		return p.State == "live" && p.VideoPacketsReceived > 50 && p.AudioPacketsReceived > 10
	})
	t.Logf("the page waited %+v, then played", p.Waits)
	assertNoPageProblems(t, br)
}
