package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
)

// Draining (SIGTERM): readyz turns 503, connected clients are told
// server_shutting_down, new joins are refused, and everything is released.
func TestShutdown_DrainsClients(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n.publisher(ctx, "drain", loadtest.PublisherConfig{VideoBitrate: 300_000})
	v := n.viewer(ctx, "drain", "v")
	if err := v.WaitTracks(ctx, 2); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(n.base + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz before drain: %v %v", resp, err)
	}
	resp.Body.Close()
	done := make(chan error, 1)
	go func() { done <- n.server.Drain(ctx) }()
	sawShutdown := false
	for !sawShutdown {
		env, err := v.Conn().Next(ctx)
		if err != nil {
			break
		}
		if env.Type == "error" && strings.Contains(string(env.Data), "server_shutting_down") {
			sawShutdown = true
		}
	}
	if !sawShutdown {
		t.Fatal("viewer was not told server_shutting_down")
	}
	if err := <-done; err != nil {
		t.Fatalf("drain: %v", err)
	}
	if s := n.engine.Stats(); s.Tracks != 0 || s.DownTracks != 0 || s.Publishers != 0 || s.Subscribers != 0 {
		t.Fatalf("media sessions left after drain: %+v", s)
	}
	resp, err = http.Get(n.base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz during drain = %d, want 503", resp.StatusCode)
	}
}

// Close (a failed start, or a stop without a drain) closes every listener
// the node opened, the cluster's relay endpoint included: nothing answers
// on any of its ports afterwards, and its goroutines end (TestMain).
func TestClose_ClosesEveryListener(t *testing.T) {
	r := testutil.StartRedis(t)
	cfg := testutil.NodeConfig()
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.Node.ID = "closing"
	cfg.Redis.Addrs = []string{r.Addr()}
	cfg.Cluster.Secret = testClusterSecret
	relay := "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
	cfg.Cluster.RelayAddress = relay
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	n, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		n.Close()
		t.Fatal(err)
	}
	addrs := []string{n.HTTPAddr(), n.MetricsAddr(), relay}
	for _, a := range addrs {
		testutil.Eventually(t, a+" accepts", func() bool {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}
	n.Close()
	for _, a := range addrs {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after Close", a)
		}
	}
}

// A drain that did not finish is told apart from a node that never
// served: Run's error is a ShutdownError, which halo-sfu logs as
// "shutdown incomplete" with the drain's own error.
func TestShutdownError_CarriesTheDrainsError(t *testing.T) {
	var err error = &ShutdownError{Err: context.DeadlineExceeded}
	var incomplete *ShutdownError
	if !errors.As(fmt.Errorf("run: %w", err), &incomplete) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%v: not a ShutdownError wrapping the drain's error", err)
	}
	if got := err.Error(); got != "shutdown incomplete: context deadline exceeded" {
		t.Fatalf("message %q", got)
	}
}
