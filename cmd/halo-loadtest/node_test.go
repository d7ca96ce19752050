package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/room"
	"github.com/halobuzz/live/sfu"
	"github.com/halobuzz/live/signaling"
)

// testServer is a HaloBuzz Live node started in-process on free loopback
// ports, wired as cmd/halo-sfu wires one (a single node, no Redis), with
// its metrics listener: the real server the load tester is pointed at.
type testServer struct {
	secret     string
	wsURL      string
	base       string // http://host:port
	metricsURL string
}

func startServer(t *testing.T, opts ...func(*config.Config)) *testServer {
	t.Helper()
	cfg := config.Default()
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	cfg.Auth.Secret = hex.EncodeToString(secret)
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.SFU.UDPPort = 0
	cfg.SFU.UDPAddress = "127.0.0.1"
	cfg.SFU.IncludeLoopback = true
	cfg.Room.EmptyTimeout = 100 * time.Millisecond
	cfg.Limits.JoinsPerIPPerMinute = 100_000
	for _, o := range opts {
		o(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	log := slog.New(slog.DiscardHandler)
	engine, err := sfu.NewEngine(cfg.SFU, log)
	if err != nil {
		t.Fatal(err)
	}
	store, closeStore, err := room.OpenStore(cfg, log)
	if err != nil {
		engine.Close()
		t.Fatal(err)
	}
	rooms := room.NewManager(engine, store, room.Options{
		NodeID:                cfg.Node.ID,
		EmptyTimeout:          cfg.Room.EmptyTimeout,
		ParticipantsPerRoom:   cfg.Limits.ParticipantsPerRoom,
		TracksPerParticipant:  cfg.Limits.TracksPerParticipant,
		MaxSDPBytes:           cfg.Limits.MaxSDPBytes,
		MaxMediaSections:      cfg.Limits.MaxMediaSections,
		RoomMessagesPerSecond: float64(cfg.Limits.RoomMessagesPerSecond),
		RoomMessagesBurst:     cfg.Limits.RoomMessagesBurst,
		RepublishGrace:        cfg.Room.RepublishGrace,
		Log:                   log,
	})
	metrics := signaling.NewMetrics(engine, rooms)
	srv, err := signaling.New(cfg, rooms, metrics, log)
	if err != nil {
		rooms.Close()
		closeStore()
		engine.Close()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		t.Fatal(err)
	}
	rooms.SetPublicURL("http://" + ln.Addr().String())
	httpSrv := srv.HTTPServer()
	go func() { _ = httpSrv.Serve(srv.Listener(ln)) }()
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(metrics.Registry(), promhttp.HandlerOpts{}))
	metricsSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = metricsSrv.Serve(mln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Drain(ctx)
		_ = httpSrv.Shutdown(ctx)
		_ = metricsSrv.Shutdown(ctx)
		rooms.Close()
		closeStore()
		engine.Close()
	})
	return &testServer{
		secret:     cfg.Auth.Secret,
		wsURL:      "ws://" + ln.Addr().String() + "/ws",
		base:       "http://" + ln.Addr().String(),
		metricsURL: "http://" + mln.Addr().String() + "/metrics",
	}
}
