package node

import (
	"context"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	"github.com/halobuzz/live/signaling/auth"
	"github.com/pion/webrtc/v4"
)

// shortToken mints a token for room that expires after ttl (JWT exp is in
// whole seconds).
func (n *testNode) shortToken(room, identity string, publish, subscribe bool, ttl time.Duration) (string, time.Time) {
	n.t.Helper()
	exp := time.Now().Add(ttl)
	tok, err := n.signer.Sign(auth.Claims{
		Identity: identity, Name: identity, Room: room,
		Grants:    auth.Grants{Publish: publish, Subscribe: subscribe},
		ExpiresAt: exp, IssuedAt: time.Now(),
	})
	if err != nil {
		n.t.Fatal(err)
	}
	return tok, exp.Truncate(time.Second)
}

// A session does not outlive its token: token_expiring comes first, and
// without a refresh the session ends at exp with token_expired.
func TestToken_SessionEndsAtExpWithoutRefresh(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Signaling.TokenRefreshLead = time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := n.dial(t, ctx)
	tok, exp := n.shortToken("short", "v", false, true, 3*time.Second)
	f := false
	if _, err := c.Request(ctx, "join", loadtest.JoinRequest{Token: tok, AutoSubscribe: &f}); err != nil {
		t.Fatal(err)
	}
	var te loadtest.TokenExpiring
	if err := nextOf(t, ctx, c, loadtest.TypeTokenExpiring).Decode(&te); err != nil || te.Exp != exp.Unix() || te.SecondsLeft < 0 {
		t.Fatalf("token_expiring %+v (%v), want exp %d", te, err, exp.Unix())
	}
	var e loadtest.ProtocolError
	if err := nextOf(t, ctx, c, loadtest.TypeError).Decode(&e); err != nil || e.Code != "token_expired" {
		t.Fatalf("after exp: %+v %v, want token_expired", e, err)
	}
	if time.Now().Before(exp) {
		t.Fatalf("session ended before the token's exp")
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("socket left open after token_expired")
	}
}

// A refresh with a fresh token for the same identity and room keeps the
// session past the first token's exp, and its grants apply: a viewer's
// token refreshed with publish can publish. Refused refreshes (another
// identity, another room, garbage) are not fatal.
func TestToken_RefreshKeepsTheSessionAndAppliesGrants(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Signaling.TokenRefreshLead = time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := n.dial(t, ctx)
	tok, exp := n.shortToken("fresh", "alice", false, true, 3*time.Second)
	f := false
	if _, err := c.Request(ctx, "join", loadtest.JoinRequest{Token: tok, AutoSubscribe: &f}); err != nil {
		t.Fatal(err)
	}
	_, offer := wsOffer(t)
	if _, err := c.Request(ctx, "publish", loadtest.PublishRequest{SDP: offer}); loadtest.ErrorCode(err) != "forbidden" {
		t.Fatalf("publish with a subscribe-only token: %v", err)
	}
	nextOf(t, ctx, c, loadtest.TypeTokenExpiring)
	for _, bad := range []struct{ token, code string }{
		{n.token("fresh", "mallory", true, true), "forbidden"},
		{n.token("other-room", "alice", true, true), "room_mismatch"},
		{"garbage", "unauthorized"},
	} {
		if _, err := c.Request(ctx, loadtest.TypeRefresh, loadtest.RefreshRequest{Token: bad.token}); loadtest.ErrorCode(err) != bad.code {
			t.Errorf("refresh with a bad token: %v, want %s", err, bad.code)
		}
	}
	env, err := c.Request(ctx, loadtest.TypeRefresh, loadtest.RefreshRequest{Token: n.token("fresh", "alice", true, true)})
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	var r loadtest.Refreshed
	if err := env.Decode(&r); err != nil || !r.Grants.Publish || !r.Grants.Subscribe || r.Exp <= exp.Unix() {
		t.Fatalf("refreshed %+v %v", r, err)
	}
	// Past the first token's exp the session goes on, with the new grant.
	time.Sleep(time.Until(exp.Add(1500 * time.Millisecond)))
	pc, offer := wsOffer(t)
	env, err = c.Request(ctx, "publish", loadtest.PublishRequest{SDP: offer})
	if err != nil {
		t.Fatalf("publish after the refresh granted it: %v", err)
	}
	var ans loadtest.SDPMessage
	if err := env.Decode(&ans); err != nil {
		t.Fatal(err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans.SDP}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
		t.Fatal("the refreshed session was closed")
	default:
	}
}

// The load tester's clients refresh by themselves with a TokenSource: a
// viewer on a 3 s token keeps receiving the broadcast after it expired.
func TestToken_LoadtestViewerRefreshesAndKeepsWatching(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Signaling.TokenRefreshLead = time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n.publisher(ctx, "lt", loadtest.PublisherConfig{VideoBitrate: 300_000})
	tok, exp := n.shortToken("lt", "viewer", false, true, 3*time.Second)
	v := loadtest.NewViewer(loadtest.ViewerConfig{URL: n.wsURL, Room: "lt", Token: tok,
		TokenSource: func() (string, error) { return n.token("lt", "viewer", false, true), nil }})
	if err := v.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	if err := v.WaitTracks(ctx, 2); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(exp.Add(1500 * time.Millisecond)))
	select {
	case <-v.Conn().Done():
		t.Fatal("the viewer's session ended at its first token's exp despite its TokenSource")
	default:
	}
	before := v.Stats().VideoPackets
	testutil.Eventually(t, "video after the first token's exp", func() bool { return v.Stats().VideoPackets > before+20 })
}

// A refreshed token without publish ends the publisher's tracks: the room
// is told track_unpublished.
func TestToken_RefreshWithoutPublishUnpublishes(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Signaling.TokenRefreshLead = time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	obs := n.dial(t, ctx)
	if _, err := obs.Request(ctx, "join", loadtest.JoinRequest{Token: n.token("rv", "obs", false, true), AutoSubscribe: new(bool)}); err != nil {
		t.Fatal(err)
	}
	pubTok, _ := n.shortToken("rv", "pub", true, false, 3*time.Second)
	p := loadtest.NewPublisher(loadtest.PublisherConfig{URL: n.wsURL, Room: "rv", Token: pubTok, VideoBitrate: 300_000,
		TokenSource: func() (string, error) { return n.token("rv", "pub", false, false), nil }})
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	nextOf(t, ctx, obs, loadtest.TypeTrackPublished)
	nextOf(t, ctx, obs, loadtest.TypeTrackUnpublished)
	select {
	case <-p.Conn().Done():
		t.Fatal("the publisher's session ended; only its tracks should")
	default:
	}
}

// A refreshed token without subscribe closes the viewer's subscriber
// connection: its down-tracks stop at once.
func TestToken_RefreshWithoutSubscribeStopsTheMedia(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Signaling.TokenRefreshLead = time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n.publisher(ctx, "rs", loadtest.PublisherConfig{VideoBitrate: 300_000})
	tok, _ := n.shortToken("rs", "viewer", false, true, 3*time.Second)
	v := loadtest.NewViewer(loadtest.ViewerConfig{URL: n.wsURL, Room: "rs", Token: tok,
		TokenSource: func() (string, error) { return n.token("rs", "viewer", false, false), nil }})
	if err := v.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	if err := v.WaitTracks(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if got := n.engine.Stats().Subscribers; got != 1 {
		t.Fatalf("%d subscriber connections, want 1", got)
	}
	testutil.Eventually(t, "the subscriber connection closed after the refresh", func() bool {
		s := n.engine.Stats()
		return s.Subscribers == 0 && s.DownTracks == 0
	})
	select {
	case <-v.Conn().Done():
		t.Fatal("the session ended; only its subscription should")
	default:
	}
}
