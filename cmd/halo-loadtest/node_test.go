package main

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/node"
	"github.com/halobuzz/live/internal/testutil"
)

// testServer is a HaloBuzz Live node started in-process on free loopback
// ports by internal/node, as halo-sfu starts one (a single node, no Redis),
// with its metrics listener: the real server the load tester is pointed at.
type testServer struct {
	secret     string
	wsURL      string
	base       string // http://host:port
	metricsURL string
}

func startServer(t *testing.T, opts ...func(*config.Config)) *testServer {
	t.Helper()
	cfg := testutil.NodeConfig()
	cfg.Limits.JoinsPerIPPerMinute = 100_000
	cfg.Metrics.Listen = "127.0.0.1:0"
	for _, o := range opts {
		o(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	n, err := node.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		n.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return &testServer{
		secret:     cfg.Auth.Secret,
		wsURL:      "ws://" + n.HTTPAddr() + "/ws",
		base:       "http://" + n.HTTPAddr(),
		metricsURL: "http://" + n.MetricsAddr() + "/metrics",
	}
}
