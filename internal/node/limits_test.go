package node

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	"github.com/pion/webrtc/v4"
)

// wsOffer is a complete send-only VP8 offer of a fresh Pion client.
func wsOffer(t *testing.T) (*webrtc.PeerConnection, string) {
	t.Helper()
	pc := newTestPC(t)
	video, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "cam", "ws")
	if _, err := pc.AddTransceiverFromTrack(video, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	testutil.LocalOffer(t, pc)
	return pc, pc.LocalDescription().SDP
}

// dropLines removes the SDP lines that start with prefix.
func dropLines(sdp, prefix string) string {
	var out []string
	for _, l := range strings.Split(sdp, "\r\n") {
		if !strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\r\n")
}

// A rejected offer leaves the socket usable: the broadcaster fixes the offer
// and publishes on the same connection.
func TestPublish_ValidOfferAfterARejectedOneSucceeds(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, bad := range []struct{ name, drop, value string }{
		{"no fingerprint", "a=fingerprint:", ""},
		{"no ufrag", "a=ice-ufrag:", ""},
		{"no pwd", "a=ice-pwd:", ""},
		{"one-character ufrag", "a=ice-ufrag:", "a=ice-ufrag:a"},
		// Passes the server's own checks, refused by Pion half-way.
		{"no mid", "a=mid:", ""},
	} {
		t.Run(bad.name, func(t *testing.T) {
			c := n.dial(t, ctx)
			f := false
			if _, err := c.Request(ctx, "join", loadtest.JoinRequest{Token: n.token("rej", "p-"+bad.name, true, false), AutoSubscribe: &f}); err != nil {
				t.Fatal(err)
			}
			_, good := wsOffer(t)
			broken := dropLines(good, bad.drop)
			if bad.value != "" {
				broken = strings.Replace(broken, "a=rtcp-mux", bad.value+"\r\na=rtcp-mux", 1)
			}
			_, err := c.Request(ctx, "publish", loadtest.PublishRequest{SDP: broken})
			if got := loadtest.ErrorCode(err); got != "invalid_sdp" {
				t.Fatalf("broken offer: %v, want invalid_sdp", err)
			}
			// The client reads a fixed message, not Pion's text.
			if msg := err.Error(); strings.Contains(msg, "sfu:") || strings.Contains(msg, "remoteDescription") || strings.Contains(msg, "Error:") {
				t.Errorf("internal text reached the client: %q", msg)
			}
			pc, offer := wsOffer(t)
			env, err := c.Request(ctx, "publish", loadtest.PublishRequest{SDP: offer})
			if err != nil {
				t.Fatalf("valid publish after a rejected one: %v", err)
			}
			var ans loadtest.SDPMessage
			if err := env.Decode(&ans); err != nil {
				t.Fatal(err)
			}
			if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans.SDP}); err != nil {
				t.Fatalf("answer: %v", err)
			}
		})
	}
}

// Candidates trickled before the remote description are kept up to a bound
// per connection; past it each one is answered too_many_candidates (not
// fatal: the socket goes on).
func TestTrickle_CandidateFloodBeforeAnswerIsBounded(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Limits.MessagesPerSecond = 10000 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := n.dial(t, ctx)
	// Joining subscribes: the server opens a subscriber connection and the
	// client never answers, so every candidate waits.
	if _, err := c.Request(ctx, "join", loadtest.JoinRequest{Token: n.token("flood", "v", false, true)}); err != nil {
		t.Fatal(err)
	}
	const sent = 300
	mid := "0"
	ids := map[int64]bool{}
	for i := range sent {
		id, err := c.Send("trickle", loadtest.Trickle{Target: "subscriber", Candidate: &webrtc.ICECandidateInit{
			Candidate: fmt.Sprintf("candidate:%d 1 udp 2130706431 127.0.0.1 %d typ host", i, 10000+i), SDPMid: &mid}})
		if err != nil {
			t.Fatal(err)
		}
		ids[id] = true
	}
	// Messages are handled in order: once this is answered, every trickle was.
	if _, err := c.Request(ctx, "unsubscribe", loadtest.TrackIDs{TrackIDs: []string{}}); err != nil {
		t.Fatalf("socket unusable after the flood: %v", err)
	}
	refused := 0
	for {
		wctx, wcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		env, err := c.Next(wctx)
		wcancel()
		if err != nil {
			break
		}
		if env.Type != "error" {
			continue
		}
		var e loadtest.ProtocolError
		_ = env.Decode(&e)
		if e.Code != "too_many_candidates" || !ids[env.ID] {
			t.Fatalf("error %+v (id %d)", e, env.ID)
		}
		refused++
	}
	if want := sent - 64; refused != want {
		t.Fatalf("%d candidates refused, want %d (64 kept)", refused, want)
	}
}

// readToEOF reads conn until the server closes it and returns what came. A
// connection the server keeps open fails the test when the guard deadline
// (a hang guard, not a timing) passes.
func readToEOF(t *testing.T, conn net.Conn) string {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("connection not closed by the server: %v (read %q)", err, b)
	}
	return string(b)
}

// The HTTP server's timeouts free what slow or idle clients hold: 300 WHIP
// offers whose body never completes and 300 idle keep-alive connections are
// closed by http.read_timeout and http.idle_timeout, and their goroutines
// end, while a WebSocket viewer (whose connection is exempt from the read
// timeout once upgraded) keeps receiving the broadcast.
func TestHTTPTimeouts_StalledBodiesAndIdleConnectionsAreClosed(t *testing.T) {
	n := startNode(t, func(c *config.Config) {
		c.HTTP.ReadHeaderTimeout = 300 * time.Millisecond
		c.HTTP.ReadTimeout = 300 * time.Millisecond
		c.HTTP.IdleTimeout = 300 * time.Millisecond
		c.HTTP.MaxConnsPerIP = 0         // 600 connections from 127.0.0.1
		c.Limits.JoinsPerIPPerMinute = 0 // every offer gets as far as its body
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	n.publisher(ctx, "live", loadtest.PublisherConfig{VideoBitrate: 300_000})
	v := n.viewer(ctx, "live", "watcher")
	if err := v.WaitTracks(ctx, 2); err != nil {
		t.Fatal(err)
	}
	baseline := runtime.NumGoroutine()

	tok := n.token("stall", "stall", true, false)
	const each = 300
	var stalled, idle []net.Conn
	for range each {
		c, err := net.Dial("tcp", n.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "POST /whip/stall HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/sdp\r\n"+
			"Content-Length: 5000\r\n\r\nv=0\r\n", tok)
		stalled = append(stalled, c)
	}
	for range each {
		c, err := net.Dial("tcp", n.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") // keep-alive: HTTP/1.1's default
		idle = append(idle, c)
	}
	for _, c := range stalled {
		if got := readToEOF(t, c); !strings.HasPrefix(got, "HTTP/1.1 400") {
			t.Fatalf("stalled offer answered %q, want 400", got)
		}
	}
	for _, c := range idle {
		if got := readToEOF(t, c); !strings.HasPrefix(got, "HTTP/1.1 200") || !strings.HasSuffix(got, "ok\n") {
			t.Fatalf("idle connection: %q, want its 200 and then the close", got)
		}
	}
	// Their goroutines are gone: back to what the broadcast alone uses.
	testutil.Eventually(t, "goroutines back to baseline", func() bool { return runtime.NumGoroutine() <= baseline+10 })

	// The viewer's WebSocket outlived the short read timeout, and media
	// still flows to it.
	select {
	case <-v.Conn().Done():
		t.Fatal("the viewer's WebSocket was closed")
	default:
	}
	before := v.Stats().VideoPackets
	testutil.Eventually(t, "viewer keeps receiving video", func() bool { return v.Stats().VideoPackets > before+20 })
	if _, err := v.Conn().Request(ctx, "unsubscribe", loadtest.TrackIDs{TrackIDs: []string{}}); err != nil {
		t.Fatalf("the viewer's signalling stopped: %v", err)
	}
}

// http.max_conns_per_ip: one address holding the cap has its next
// connection answered 429 and closed; closing one frees a place.
func TestConnsPerIP_OverTheCapIsAnswered429(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.HTTP.MaxConnsPerIP = 4 })
	var held []net.Conn
	for range 4 {
		c, err := net.Dial("tcp", n.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		held = append(held, c)
	}
	// The held connections are accepted and served.
	fmt.Fprintf(held[0], "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(held[0]), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("a connection within the cap: %v %v", resp, err)
	}
	over, err := net.Dial("tcp", n.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	if got := readToEOF(t, over); !strings.HasPrefix(got, "HTTP/1.1 429") || !strings.Contains(got, "rate_limited: too many connections") {
		t.Fatalf("fifth connection: %q, want 429 rate_limited and the close", got)
	}
	held[1].Close()
	testutil.Eventually(t, "a freed place is usable", func() bool {
		resp, err := http.Get(n.base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// limits.unjoined_sockets_per_ip: WebSockets open without a join are capped
// per address (429 at the upgrade); a join frees the socket's place.
func TestUnjoinedSockets_CappedPerIP(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Limits.UnjoinedSocketsPerIP = 3 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var socks []*loadtest.Conn
	for range 3 {
		socks = append(socks, n.dial(t, ctx))
	}
	if _, err := loadtest.Dial(ctx, n.wsURL); err == nil || !strings.Contains(err.Error(), "429") {
		t.Fatalf("fourth unjoined socket: %v, want HTTP 429", err)
	}
	if _, err := socks[0].Request(ctx, "join", loadtest.JoinRequest{Token: n.token("u", "v", false, true)}); err != nil {
		t.Fatal(err)
	}
	c, err := loadtest.Dial(ctx, n.wsURL)
	if err != nil {
		t.Fatalf("a socket after one of the three joined: %v", err)
	}
	c.Close()
	socks[1].Close()
	testutil.Eventually(t, "a closed socket frees its place", func() bool {
		c, err := loadtest.Dial(ctx, n.wsURL)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// Behind a trusted proxy each client has its own per-IP budget, named by
// X-Forwarded-For, an IPv6 client counting as its /64; from an untrusted
// peer the header is ignored.
func TestTrustedProxies_XForwardedForNamesTheClient(t *testing.T) {
	post := func(t *testing.T, n *testNode, xff string) int {
		t.Helper()
		resp := doHTTP(t, "POST", n.base+"/whip/x", "bad-token", "application/sdp", validOffer, map[string]string{"X-Forwarded-For": xff})
		return resp.StatusCode
	}
	proxied := startNode(t, func(c *config.Config) {
		c.Limits.JoinsPerIPPerMinute = 2
		c.HTTP.TrustedProxies = []string{"127.0.0.1/32"}
	})
	for i, tc := range []struct {
		xff  string
		want int
	}{
		{"198.51.100.1", 401}, {"198.51.100.1", 401}, {"198.51.100.1", 429},
		{"6.6.6.6, 198.51.100.2", 401},                                                       // a forged left part does not matter
		{"2001:db8:1:2::1", 401}, {"2001:db8:1:2::ffff", 401}, {"2001:db8:1:2:abcd::1", 429}, // one /64
		{"2001:db8:1:3::1", 401}, // the next /64
	} {
		if got := post(t, proxied, tc.xff); got != tc.want {
			t.Errorf("behind the proxy, request %d from %s: %d, want %d", i, tc.xff, got, tc.want)
		}
	}
	direct := startNode(t, func(c *config.Config) { c.Limits.JoinsPerIPPerMinute = 2 })
	got := []int{post(t, direct, "198.51.100.1"), post(t, direct, "198.51.100.2"), post(t, direct, "198.51.100.3")}
	if got[0] != 401 || got[1] != 401 || got[2] != 429 {
		t.Errorf("untrusted peer with X-Forwarded-For: %v, want 401 401 429 (the header ignored)", got)
	}
}
