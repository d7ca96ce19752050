package signaling

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/room"
	"github.com/halobuzz/live/signaling/auth"
	"github.com/pion/webrtc/v4"
)

// testServer is a real signalling server on a loopback port, over a real
// room manager and media engine, built as the node builds them
// (internal/node.New), logging to logs. It serves the relay endpoint: it
// has a cluster secret and says it is one of a cluster (no Redis: the rooms
// are its own, which is all the origin side of a relay needs).
type testServer struct {
	s     *Server
	rooms *room.Manager
	cfg   *config.Config
	url   string
	logs  *testutil.SyncBuffer
}

// startServer starts a testServer; edit, if not nil, changes the
// configuration first. Everything stops when t ends.
func startServer(t *testing.T, edit func(*config.Config)) *testServer {
	t.Helper()
	cfg := testutil.NodeConfig()
	cfg.Node.ID = "origin"
	cfg.Cluster.Secret = strings.Repeat("c", 40)
	cfg.Log.Level = "debug"
	if edit != nil {
		edit(cfg)
	}
	logs := &testutil.SyncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rooms, err := room.NewStandalone(cfg.SFU, room.Options{NodeID: cfg.Node.ID, Room: cfg.Room, Limits: cfg.Limits, Log: log, RelayTrunks: cfg.Cluster.RelayTrunks})
	if err != nil {
		t.Fatal(err)
	}
	sc := ConfigOf(cfg)
	sc.Clustered = true
	s, err := New(sc, rooms, NewMetrics(nil), log)
	if err != nil {
		rooms.Close()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := s.HTTPServer()
	go func() { _ = hs.Serve(s.Listener(ln)) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Drain(ctx)
		_ = hs.Close()
		rooms.Close()
	})
	return &testServer{s: s, rooms: rooms, cfg: cfg, url: "http://" + ln.Addr().String(), logs: logs}
}

// token mints a client token for room (auth.secret).
func (ts *testServer) token(t *testing.T, identity, roomName string, publish bool) string {
	t.Helper()
	tok, err := ts.s.Signer().Sign(auth.Claims{Identity: identity, Room: roomName,
		Grants: auth.Grants{Publish: publish, Subscribe: true}, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// edgeOffer is what an edge node sends the origin for a relay: a
// receive-only offer for one audio and one video track, every candidate in
// it, from a real Pion peer on loopback.
func edgeOffer(t *testing.T) string {
	t.Helper()
	pc := testutil.LoopbackPeer(t, testutil.PeerOptions{})
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		if _, err := pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	return testutil.LocalOffer(t, pc)
}

// do sends a request and returns its status, its Retry-After and its body.
func do(t *testing.T, method, url, token, contentType, body string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Close = true // no idle connection outlives the test
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(b)
}
