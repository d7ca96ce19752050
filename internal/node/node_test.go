package node

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	"github.com/halobuzz/live/signaling/auth"
)

// testNode is a server started in-process on free loopback ports.
type testNode struct {
	*Node
	t      *testing.T
	signer *auth.Signer
	wsURL  string
	base   string
}

func startNode(t *testing.T, mutate func(*config.Config)) *testNode {
	t.Helper()
	return startNodeWithLog(t, mutate, nil)
}

// startNodeWithLog is startNode logging to log; nil logs everything to
// stderr with HALO_TEST_LOG set, else nowhere.
func startNodeWithLog(t *testing.T, mutate func(*config.Config), log *slog.Logger) *testNode {
	t.Helper()
	cfg := testutil.NodeConfig()
	if mutate != nil {
		mutate(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	if log == nil {
		// Discarded logs are not formatted at all: Pion's debug records
		// go through slog too.
		log = slog.New(slog.DiscardHandler)
		if os.Getenv("HALO_TEST_LOG") != "" {
			log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	}
	tn := newStartedNode(t, cfg, log)
	n := tn.Node
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return tn
}

// newStartedNode builds and starts a node of cfg logging to log; the
// caller stops it.
func newStartedNode(t *testing.T, cfg *config.Config, log *slog.Logger) *testNode {
	t.Helper()
	n, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		n.Close()
		t.Fatal(err)
	}
	signer, err := auth.NewSigner([]byte(cfg.Auth.Secret))
	if err != nil {
		t.Fatal(err)
	}
	return &testNode{Node: n, t: t, signer: signer, wsURL: "ws://" + n.HTTPAddr() + "/ws", base: "http://" + n.HTTPAddr()}
}

// token mints a token for room with the given grants.
func (n *testNode) token(room, identity string, publish, subscribe bool) string {
	n.t.Helper()
	tok, err := n.signer.Sign(auth.Claims{
		Identity: identity, Name: identity, Room: room,
		Grants:    auth.Grants{Publish: publish, Subscribe: subscribe},
		ExpiresAt: time.Now().Add(time.Hour), IssuedAt: time.Now(),
	})
	if err != nil {
		n.t.Fatal(err)
	}
	return tok
}

func (n *testNode) publisher(ctx context.Context, room string, cfg loadtest.PublisherConfig) *loadtest.Publisher {
	n.t.Helper()
	cfg.URL, cfg.Room, cfg.Token = n.wsURL, room, n.token(room, "pub-"+room, true, false)
	p := loadtest.NewPublisher(cfg)
	if err := p.Start(ctx); err != nil {
		n.t.Fatalf("publisher start: %v", err)
	}
	n.t.Cleanup(func() { _ = p.Close() })
	return p
}

func (n *testNode) viewer(ctx context.Context, room, identity string) *loadtest.Viewer {
	n.t.Helper()
	v := loadtest.NewViewer(loadtest.ViewerConfig{URL: n.wsURL, Room: room, Token: n.token(room, identity, false, true)})
	if err := v.Start(ctx); err != nil {
		n.t.Fatalf("viewer %s start: %v", identity, err)
	}
	n.t.Cleanup(func() { _ = v.Close() })
	return v
}

// dial opens a signalling connection, closed when t ends.
func (n *testNode) dial(t *testing.T, ctx context.Context) *loadtest.Conn {
	t.Helper()
	c, err := loadtest.Dial(ctx, n.wsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// settle waits until the viewers have stopped receiving (after the
// publisher stopped): every packet sent must arrive, however long the last
// ones take on a busy machine.
func settle(viewers []*loadtest.Viewer) {
	total := func() (sum uint64) {
		for _, v := range viewers {
			s := v.Stats()
			sum += s.VideoPackets + s.AudioPackets
		}
		return sum
	}
	for last := total(); ; {
		time.Sleep(500 * time.Millisecond)
		now := total()
		if now == last {
			return
		}
		last = now
	}
}
