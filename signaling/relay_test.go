package signaling

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	"github.com/halobuzz/live/room"
	"github.com/halobuzz/live/signaling/auth"
)

// broadcast publishes over WHIP to roomName on ts (a real Pion publisher:
// VP8 and Opus) and returns the ids of its tracks once the room has them.
func broadcast(t *testing.T, ts *testServer, roomName string) (*loadtest.Publisher, []string) {
	t.Helper()
	return broadcastWith(t, ts, roomName, ts.token(t, "star", roomName, true))
}

// broadcastWith is broadcast with the bearer token given.
func broadcastWith(t *testing.T, ts *testServer, roomName, token string) (*loadtest.Publisher, []string) {
	t.Helper()
	pub := loadtest.NewPublisher(loadtest.PublisherConfig{
		WHIPURL: ts.url + "/whip/" + roomName, Token: token, VideoBitrate: 200_000,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pub.Start(ctx); err != nil {
		t.Fatalf("WHIP publish: %v", err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	var ids []string
	testutil.Eventually(t, "the room lists the broadcast's two tracks", func() bool {
		ids = ids[:0]
		if r := ts.rooms.Room(roomName); r != nil {
			for _, tr := range r.Tracks() {
				ids = append(ids, tr.ID)
			}
		}
		return len(ids) == 2
	})
	return pub, ids
}

// edge is another node of the cluster as the origin sees it: the dialer
// the node builds (signaling.NewRelayDialer) with its own node id and the
// shared cluster secret.
func edge(t *testing.T, ts *testServer, node string) room.RelayDialer {
	t.Helper()
	cfg := *ts.cfg
	cfg.Node.ID = node
	dial, err := NewRelayDialer(ConfigOf(&cfg))
	if err != nil {
		t.Fatal(err)
	}
	return dial
}

// relayAsk sends one relay request to ts as the edge's dialer does, with the
// token given, and returns the status, Retry-After and body.
func relayAsk(t *testing.T, ts *testServer, token, roomName string, ids []string, offer string) (int, string, string) {
	t.Helper()
	return do(t, "POST", ts.url+"/relay/"+roomName+"?tracks="+strings.Join(ids, ","), token, mimeSDP, offer)
}

// One relay request replayed (the same token, the same offer) is refused
// with token_replayed and sets up nothing; a fresh token still works.
func TestRelay_ReplayedRequestIsRefused(t *testing.T) {
	ts := startServer(t, nil)
	_, ids := broadcast(t, ts, "replay")
	signer, err := auth.NewSigner([]byte(ts.cfg.Cluster.Secret))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := relayToken(signer, "edge-b", "replay", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	offer := edgeOffer(t)
	if status, _, body := relayAsk(t, ts, tok, "replay", ids, offer); status != http.StatusCreated {
		t.Fatalf("first use of a relay token: %d %q, want 201", status, body)
	}
	for range 5 {
		status, _, body := relayAsk(t, ts, tok, "replay", ids, offer)
		if status != http.StatusUnauthorized || !strings.HasPrefix(body, CodeTokenReplayed+":") {
			t.Fatalf("replayed relay request: %d %q, want 401 %s", status, body, CodeTokenReplayed)
		}
	}
	if n := ts.rooms.Stats().Relays; n != 1 {
		t.Fatalf("%d relays after one request and 5 replays, want 1", n)
	}
	// The edge's own dialer mints a fresh token per request: it works.
	answer, hangUp, err := edge(t, ts, "edge-b")(context.Background(), room.NodeInfo{ID: "origin", PublicURL: ts.url}, "replay", ids, edgeOffer(t))
	if err != nil || !strings.Contains(answer, "a=fingerprint") {
		t.Fatalf("a fresh relay request after the replays: %v", err)
	}
	hangUp()
	// A replayed DELETE is refused the same way.
	del, err := relayToken(signer, "edge-b", "replay", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{http.StatusNotFound, http.StatusUnauthorized} {
		if status, _, body := do(t, "DELETE", ts.url+"/relay/replay/p_unknown", del, "", ""); status != want {
			t.Fatalf("DELETE #%d with one token: %d %q, want %d", i+1, status, body, want)
		}
	}
}

// A relay token that would stay valid longer than a relay token does, or
// that carries no id, is refused: the origin could not bound what it
// remembers.
func TestRelay_LongLivedOrAnonymousTokenIsRefused(t *testing.T) {
	ts := startServer(t, nil)
	signer, err := auth.NewSigner([]byte(ts.cfg.Cluster.Secret))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for name, c := range map[string]auth.Claims{
		"one hour": {Identity: relayIdentity + "b", Room: "r", ID: "rt_1", ExpiresAt: now.Add(time.Hour)},
		"no jti":   {Identity: relayIdentity + "b", Room: "r", ExpiresAt: now.Add(relayTokenTTL)},
	} {
		tok, err := signer.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		if status, _, body := relayAsk(t, ts, tok, "r", []string{"x"}, "v=0"); status != http.StatusUnauthorized || !strings.HasPrefix(body, CodeUnauthorized+":") {
			t.Errorf("%s: %d %q, want 401 %s", name, status, body, CodeUnauthorized)
		}
	}
}

// A requesting node holds at most the cap of relays: one more is answered
// 429 too_many_relays with Retry-After, another node is not affected, and
// a slot is free again once a relay ends (the edge hangs up, or the
// broadcast and its room end).
func TestRelay_CapPerNodeHoldsAndFreesWhenRelaysEnd(t *testing.T) {
	ts := startServer(t, nil)
	ts.s.relays.max = 2
	pub, ids := broadcast(t, ts, "capped")
	origin := room.NodeInfo{ID: "origin", PublicURL: ts.url}
	b, c := edge(t, ts, "edge-b"), edge(t, ts, "edge-c")
	ctx := context.Background()

	var hangUps []func()
	for i := range 2 {
		_, hangUp, err := b(ctx, origin, "capped", ids, edgeOffer(t))
		if err != nil {
			t.Fatalf("relay %d of edge-b, within the cap: %v", i+1, err)
		}
		hangUps = append(hangUps, hangUp)
	}
	signer, err := auth.NewSigner([]byte(ts.cfg.Cluster.Secret))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := relayToken(signer, "edge-b", "capped", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	status, retry, body := relayAsk(t, ts, tok, "capped", ids, edgeOffer(t))
	if status != http.StatusTooManyRequests || retry == "" || !strings.HasPrefix(body, CodeTooManyRelays+":") {
		t.Fatalf("edge-b's third relay: %d Retry-After %q %q, want 429 %s with Retry-After", status, retry, body, CodeTooManyRelays)
	}
	if _, _, err := b(ctx, origin, "capped", ids, edgeOffer(t)); !errors.Is(err, room.ErrRelayUnavailable) || !strings.Contains(err.Error(), "429") {
		t.Fatalf("edge-b's dialer over the cap: %v, want ErrRelayUnavailable with the 429", err)
	}
	if n := ts.rooms.Stats().Relays; n != 2 {
		t.Fatalf("%d relays served, want the 2 of the cap", n)
	}
	_, hangUpC, err := c(ctx, origin, "capped", ids, edgeOffer(t))
	if err != nil {
		t.Fatalf("edge-c's relay while edge-b is at its cap: %v", err)
	}
	defer hangUpC()

	// The edge hangs up one relay (DELETE): its slot is free.
	hangUps[0]()
	if got := ts.s.relays.held("edge-b"); got != 1 {
		t.Fatalf("edge-b holds %d slots after hanging up one of 2", got)
	}
	_, again, err := b(ctx, origin, "capped", ids, edgeOffer(t))
	if err != nil {
		t.Fatalf("edge-b's relay after one of its relays ended: %v", err)
	}
	_ = again // ended with the broadcast below, as an edge that crashed would never hang up

	// The broadcast ends: its relays end, the room goes, and so do the
	// slots of relays nobody hung up.
	_ = pub.Close()
	testutil.Eventually(t, "the room ends with its broadcast", func() bool { return ts.rooms.Room("capped") == nil })
	_, ids = broadcast(t, ts, "capped")
	for i := range 2 {
		if _, _, err := b(ctx, origin, "capped", ids, edgeOffer(t)); err != nil {
			t.Fatalf("relay %d of edge-b after the room its relays were in ended: %v", i+1, err)
		}
	}
}

// A relay request whose body is not application/sdp is answered 415, as
// WHIP and WHEP are, and sets nothing up.
func TestRelay_WrongContentTypeIs415(t *testing.T) {
	ts := startServer(t, nil)
	_, ids := broadcast(t, ts, "types")
	signer, err := auth.NewSigner([]byte(ts.cfg.Cluster.Secret))
	if err != nil {
		t.Fatal(err)
	}
	offer := edgeOffer(t)
	for _, ct := range []string{"text/plain", "application/json", "", "application/sdp-x"} {
		tok, err := relayToken(signer, "edge-b", "types", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		status, _, body := do(t, "POST", ts.url+"/relay/types?tracks="+strings.Join(ids, ","), tok, ct, offer)
		if status != http.StatusUnsupportedMediaType || !strings.Contains(body, mimeSDP) {
			t.Errorf("Content-Type %q: %d %q, want 415 naming %s", ct, status, body, mimeSDP)
		}
	}
	if n := ts.rooms.Stats().Relays; n != 0 {
		t.Fatalf("%d relays set up by requests of the wrong content type", n)
	}
	if ts.s.relays.held("edge-b") != 0 {
		t.Fatalf("refused requests hold %d relay slots", ts.s.relays.held("edge-b"))
	}
}
