// Command halo-sfu is the HaloBuzz Live media server: one node of SFU plus
// signalling. Run it with --dev to try it on one machine:
//
//	go run ./cmd/halo-sfu --dev
//
// It prints a token and the web page's address. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/version"
	"github.com/halobuzz/live/room"
	"github.com/halobuzz/live/sfu"
	"github.com/halobuzz/live/signaling"
	"github.com/halobuzz/live/signaling/auth"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// defaultGCPercent is the garbage collector's target unless GOGC is set.
// The packet path does not allocate, so collections follow joins and
// signalling, not traffic: a heap target of a quarter over the live heap
// instead of Go's double costs no CPU per packet and a fifth of the
// memory per viewer (docs/benchmarks.md, "make bench-server").
const defaultGCPercent = 25

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// run is main without the process: tests call it too.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	for _, a := range args {
		if a == "--version" || a == "-version" {
			// Before the configuration: --version works without a secret or a file.
			fmt.Fprintln(stdout, version.Get())
			return 0
		}
	}
	cfg, err := config.Load(args, environ)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "halo-sfu: configuration:", err)
		return 2
	}
	if cfg.PrintConfig {
		out, err := cfg.MaskedYAML()
		if err != nil {
			fmt.Fprintln(stderr, "halo-sfu:", err)
			return 1
		}
		_, _ = stdout.Write(out)
		return 0
	}
	log := newLogger(cfg.Log, stderr)
	n, err := newNode(cfg, log)
	if err != nil {
		log.Error("start failed", "err", err)
		return 1
	}
	if err := n.start(); err != nil {
		log.Error("start failed", "err", err)
		n.close()
		return 1
	}
	if cfg.Dev {
		n.printDevInfo(stdout)
	}
	<-ctx.Done()
	log.Info("shutting down", "timeout", cfg.Shutdown.Timeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Shutdown.Timeout)
	defer cancel()
	if err := n.shutdown(sctx); err != nil {
		log.Warn("shutdown incomplete", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

func newLogger(c config.LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// node is one running server: media engine, rooms, signalling, listeners.
type node struct {
	cfg       *config.Config
	log       *slog.Logger
	engine    *sfu.Engine
	rooms     *room.Manager
	server    *signaling.Server
	metrics   *signaling.Metrics
	closeSt   func() // releases the room store (the Redis client)
	httpLn    net.Listener
	httpSrv   *http.Server
	metricsLn net.Listener
	metricsSv *http.Server
	relaySv   *http.Server // cluster.relay_address
}

func newNode(cfg *config.Config, log *slog.Logger) (*node, error) {
	engine, err := sfu.NewEngine(cfg.SFU, log)
	if err != nil {
		return nil, err
	}
	store, closeStore, err := room.OpenStore(cfg, log)
	if err != nil {
		engine.Close()
		return nil, err
	}
	clustered := len(cfg.Redis.Addrs) > 0
	if clustered {
		log.Info("cluster: using Redis for shared room state", "redis", cfg.Redis.Addrs,
			"sentinel_master", cfg.Redis.SentinelMaster, "node", cfg.Node.ID, "region", cfg.Node.Region)
	}
	var dial room.RelayDialer
	if clustered {
		if dial, err = signaling.NewRelayDialer(cfg); err != nil {
			closeStore()
			engine.Close()
			return nil, err
		}
	}
	rooms := room.NewManager(engine, store, room.Options{
		Cluster:      clustered,
		RelayDial:    dial,
		RelayGrace:   cfg.Cluster.RelayGrace,
		Node:         room.NodeInfo{Region: cfg.Node.Region, PublicURL: cfg.HTTP.PublicURL, RelayAddress: cfg.Cluster.RelayAddress},
		Heartbeat:    cfg.Cluster.HeartbeatInterval,
		StoreTimeout: cfg.Redis.Timeout,

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
		return nil, err
	}
	return &node{cfg: cfg, log: log, engine: engine, rooms: rooms, server: srv, metrics: metrics, closeSt: closeStore}, nil
}

func (n *node) start() error {
	ln, err := net.Listen("tcp", n.cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http.listen %s: %w", n.cfg.HTTP.Listen, err)
	}
	n.httpLn = ln
	if n.cfg.HTTP.PublicURL == "" {
		n.rooms.SetPublicURL(derivedURL(ln.Addr().String()))
	}
	n.httpSrv = n.server.HTTPServer()
	go func() { _ = n.httpSrv.Serve(n.server.Listener(ln)) }()
	if a := n.cfg.Cluster.RelayAddress; a != "" && len(n.cfg.Redis.Addrs) > 0 {
		rl, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("cluster.relay_address %s: %w", a, err)
		}
		n.relaySv = &http.Server{Handler: n.server.RelayHandler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second}
		go func() { _ = n.relaySv.Serve(rl) }()
	}
	if n.cfg.Metrics.Listen != "" {
		ml, err := net.Listen("tcp", n.cfg.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("metrics.listen %s: %w", n.cfg.Metrics.Listen, err)
		}
		n.metricsLn = ml
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(n.metrics.Registry(), promhttp.HandlerOpts{}))
		if n.cfg.Metrics.Pprof {
			// Profiles on the internal metrics listener only, never on
			// http.listen, and only when asked for (metrics.pprof).
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		n.metricsSv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = n.metricsSv.Serve(ml) }()
	}
	n.log.Info("serving", "http", ln.Addr().String(), "media_udp", fmt.Sprint(n.engine.UDPAddrs()),
		"metrics", n.cfg.Metrics.Listen, "dev", n.cfg.Dev, "node", n.cfg.Node.ID, "region", n.cfg.Node.Region)
	return nil
}

// derivedURL is the URL the registry announces when http.public_url is not
// set: the listener's address, with the host name for a wildcard host.
func derivedURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err == nil && (host == "::" || host == "0.0.0.0" || host == "") {
		if h, herr := os.Hostname(); herr == nil && h != "" {
			addr = net.JoinHostPort(h, port)
		}
	}
	return "http://" + addr
}

// httpAddr is the address the HTTP listener is bound to.
func (n *node) httpAddr() string { return n.httpLn.Addr().String() }

// shutdown drains: new joins are refused, every participant is told
// server_shutting_down and released, then the listeners and the engine close.
func (n *node) shutdown(ctx context.Context) error {
	err := n.server.Drain(ctx)
	if n.httpSrv != nil {
		if e := n.httpSrv.Shutdown(ctx); e != nil && err == nil {
			err = e
		}
	}
	if n.metricsSv != nil {
		_ = n.metricsSv.Shutdown(ctx)
	}
	if n.relaySv != nil {
		_ = n.relaySv.Shutdown(ctx)
	}
	n.rooms.Close()
	n.closeSt()
	n.engine.Close()
	return err
}

func (n *node) close() {
	if n.httpSrv != nil {
		_ = n.httpSrv.Close()
	}
	if n.metricsSv != nil {
		_ = n.metricsSv.Close()
	}
	n.rooms.Close()
	n.closeSt()
	n.engine.Close()
}

// printDevInfo prints what a new user needs to try the server: a token and
// the page to open.
func (n *node) printDevInfo(w io.Writer) {
	host := n.httpAddr()
	if h, p, err := net.SplitHostPort(host); err == nil && (h == "::" || h == "0.0.0.0" || h == "") {
		host = net.JoinHostPort("localhost", p)
	}
	tok, err := n.server.Signer().Sign(auth.Claims{
		Identity: "dev", Name: "Dev", Room: "demo",
		Grants:    auth.Grants{Publish: true, Subscribe: true},
		ExpiresAt: time.Now().Add(n.cfg.Auth.TokenTTL), IssuedAt: time.Now(),
	})
	if err != nil {
		n.log.Error("dev token", "err", err)
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nHaloBuzz Live is running in DEV mode (loopback ICE, generated secret: not for production).\n")
	fmt.Fprintf(&b, "  web page:    http://%s/\n", host)
	fmt.Fprintf(&b, "  watch demo:  http://%s/#/watch/demo\n", host)
	fmt.Fprintf(&b, "  WebSocket:   ws://%s/ws\n", host)
	fmt.Fprintf(&b, "  WHIP:        http://%s/whip/demo\n", host)
	fmt.Fprintf(&b, "  WHEP:        http://%s/whep/demo\n", host)
	if n.metricsLn != nil {
		fmt.Fprintf(&b, "  metrics:     http://%s/metrics\n", n.metricsLn.Addr())
	}
	fmt.Fprintf(&b, "  token (room demo, publish+subscribe):\n    %s\n", tok)
	fmt.Fprintf(&b, "  load test:   go run ./cmd/halo-loadtest --url ws://%s/ws --room demo --token %s --viewers 50 --duration 30s\n\n", host, tok)
	_, _ = io.WriteString(w, b.String())
}
