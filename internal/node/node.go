package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/room"
	"github.com/halobuzz/live/room/cluster"
	"github.com/halobuzz/live/sfu"
	"github.com/halobuzz/live/signaling"
	"github.com/halobuzz/live/signaling/auth"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Node is one running server: media engine, rooms, signalling, listeners.
type Node struct {
	cfg       *config.Config
	log       *slog.Logger
	engine    *sfu.Engine
	rooms     *room.Manager
	server    *signaling.Server
	registry  *prometheus.Registry // served on metrics.listen
	closeSt   func()               // releases the room store (the Redis client)
	httpLn    net.Listener
	httpSrv   *http.Server
	metricsLn net.Listener
	metricsSv *http.Server
	relaySv   *http.Server // cluster.relay_address
	stopHooks func()       // the webhooks (webhooks.go)
	stopTURN  func()       // the embedded TURN server (turn.go)
	stopHLS   func()       // the LL-HLS server (hls.go)
}

// New builds every layer of a node for cfg (validated by the caller) and
// logs to log. Nothing listens until Start.
func New(cfg *config.Config, log *slog.Logger) (*Node, error) {
	if log == nil {
		log = slog.Default()
	}
	engine, err := sfu.NewEngine(cfg.SFU, log)
	if err != nil {
		return nil, err
	}
	opt := room.Options{
		NodeID:     cfg.Node.ID,
		Node:       room.NodeInfo{Region: cfg.Node.Region, PublicURL: cfg.HTTP.PublicURL, RelayAddress: cfg.Cluster.RelayAddress},
		MaxViewers: cfg.Node.MaxViewers,
		MaxCPU:     cfg.Node.MaxCPU,
		Room:       cfg.Room,
		Limits:     cfg.Limits,
		Log:        log,
	}
	closeStore := func() {}
	if len(cfg.Redis.Addrs) > 0 {
		// A cluster: the rooms share their state through Redis and pull
		// other nodes' tracks over relays. Alone, no cluster code runs.
		store, release, err := cluster.OpenStore(cfg, log)
		if err != nil {
			engine.Close()
			return nil, err
		}
		log.Info("cluster: using Redis for shared room state", "redis", cfg.Redis.Addrs,
			"sentinel_master", cfg.Redis.SentinelMaster, "node", cfg.Node.ID, "region", cfg.Node.Region)
		if opt.RelayDial, err = signaling.NewRelayDialer(signaling.ConfigOf(cfg)); err != nil {
			release()
			engine.Close()
			return nil, err
		}
		opt.Cluster = cluster.New(store, cluster.Options{NodeID: cfg.Node.ID, Heartbeat: cfg.Cluster.HeartbeatInterval, StoreTimeout: cfg.Redis.Timeout, Log: log})
		opt.RelayGrace = cfg.Cluster.RelayGrace
		opt.RelayTrunks = cfg.Cluster.RelayTrunks
		closeStore = release
	}
	rooms := room.NewManager(engine, opt)
	registry, reg := newRegistry(cfg.Node.ID, cfg.Node.Region)
	engine.RegisterMetrics(reg)
	rooms.RegisterMetrics(reg)
	srv, err := signaling.New(signaling.ConfigOf(cfg), rooms, signaling.NewMetrics(reg), log)
	if err != nil {
		rooms.Close()
		closeStore()
		engine.Close()
		return nil, err
	}
	stopHooks, err := startWebhooks(cfg, rooms, reg, log)
	if err != nil {
		rooms.Close()
		closeStore()
		engine.Close()
		return nil, err
	}
	stopTURN, err := startTURN(cfg, engine, reg, log)
	if err != nil {
		stopHooks()
		rooms.Close()
		closeStore()
		engine.Close()
		return nil, err
	}
	stopHLS, err := startRecording(cfg, srv, reg, log, startHLS(cfg, rooms, srv, reg, log)) // recording.go
	if err != nil {
		stopTURN()
		stopHooks()
		rooms.Close()
		closeStore()
		engine.Close()
		return nil, err
	}
	return &Node{cfg: cfg, log: log, engine: engine, rooms: rooms, server: srv, registry: registry, closeSt: closeStore, stopHooks: stopHooks, stopTURN: stopTURN, stopHLS: stopHLS}, nil
}

// Start opens the node's listeners: signalling (http.listen), the relay
// endpoint of a cluster (cluster.relay_address) and metrics
// (metrics.listen). On an error the caller calls Close.
func (n *Node) Start() error {
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
		mux.Handle("GET /metrics", promhttp.HandlerFor(n.registry, promhttp.HandlerOpts{}))
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

// HTTPAddr is the address the signalling listener is bound to.
func (n *Node) HTTPAddr() string { return n.httpLn.Addr().String() }

// MetricsAddr is the address the metrics listener is bound to, or "" when
// metrics.listen is empty.
func (n *Node) MetricsAddr() string {
	if n.metricsLn == nil {
		return ""
	}
	return n.metricsLn.Addr().String()
}

// Shutdown drains: new joins are refused, every participant is told
// server_shutting_down and released, then the listeners and the engine
// close. ctx bounds the drain.
func (n *Node) Shutdown(ctx context.Context) error {
	err := n.server.Drain(ctx)
	n.stopHLS() // answers the blocking playlist requests it holds, which httpSrv.Shutdown would wait for
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
	n.release()
	return err
}

// Close stops the node at once, without a drain: what a failed Start
// leaves is closed too.
func (n *Node) Close() {
	for _, s := range []*http.Server{n.httpSrv, n.metricsSv, n.relaySv} {
		if s != nil {
			_ = s.Close()
		}
	}
	n.release()
}

func (n *Node) release() {
	n.stopHLS()
	n.stopHooks()
	n.stopTURN()
	n.rooms.Close()
	n.closeSt()
	n.engine.CloseChecks()
	n.engine.Close()
}

// Run starts a node for cfg, prints where it serves to stdout (the
// dev-mode banner with a token in dev mode), serves until ctx ends (main turns SIGTERM into that), then drains
// within shutdown.timeout. It is the process's whole life, for the binary
// and for tests that run a node in a process of its own.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger, stdout io.Writer) error {
	n, err := New(cfg, log)
	if err != nil {
		return err
	}
	if err := n.Start(); err != nil {
		n.Close()
		return err
	}
	if cfg.Dev {
		n.PrintDevInfo(stdout)
	} else {
		n.PrintInfo(stdout)
	}
	<-ctx.Done()
	n.log.Info("shutting down", "timeout", cfg.Shutdown.Timeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Shutdown.Timeout)
	defer cancel()
	if err := n.Shutdown(sctx); err != nil {
		return &ShutdownError{Err: err}
	}
	n.log.Info("stopped")
	return nil
}

// ShutdownError is Run's error for a node that served but whose drain did
// not finish in time; any other error of Run means it never served.
type ShutdownError struct{ Err error }

func (e *ShutdownError) Error() string { return "shutdown incomplete: " + e.Err.Error() }

// Unwrap returns the drain's error.
func (e *ShutdownError) Unwrap() error { return e.Err }

// NewLogger is the process's logger as log.level and log.format ask.
func NewLogger(c config.LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// PrintInfo prints where a production node serves: the web page, the
// WebSocket, WHIP and WHEP endpoints (at http.public_url when it is set),
// metrics, the media port, and how to mint a token.
func (n *Node) PrintInfo(w io.Writer) {
	base := strings.TrimSuffix(n.cfg.HTTP.PublicURL, "/")
	if base == "" {
		base = derivedURL(n.HTTPAddr())
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nHaloBuzz Live node %s (region %s) is serving.\n", n.cfg.Node.ID, n.cfg.Node.Region)
	if n.cfg.HTTP.PublicURL != "" {
		fmt.Fprintf(&b, "  listening:   %s (TCP; http.public_url below)\n", n.HTTPAddr())
	}
	fmt.Fprintf(&b, "  web page:    %s/\n", base)
	fmt.Fprintf(&b, "  WebSocket:   ws%s/ws\n", strings.TrimPrefix(base, "http"))
	fmt.Fprintf(&b, "  WHIP:        %s/whip/{room}\n", base)
	fmt.Fprintf(&b, "  WHEP:        %s/whep/{room}\n", base)
	if a := n.MetricsAddr(); a != "" {
		fmt.Fprintf(&b, "  metrics:     http://%s/metrics\n", a)
	}
	fmt.Fprintf(&b, "  media:       UDP %v\n", n.engine.UDPAddrs())
	b.WriteString(n.turnInfo(base)) // turn.go
	fmt.Fprintf(&b, "  tokens:      halo-sfu token --room ROOM --identity ID [--publish] (same configuration)\n\n")
	_, _ = io.WriteString(w, b.String())
}

// PrintDevInfo prints what a new user needs to try the server: a token and
// the page to open.
func (n *Node) PrintDevInfo(w io.Writer) {
	host := n.HTTPAddr()
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
	// The server API and the moderator's page need the admin grant, and
	// halo-sfu token cannot sign for the secret generated here.
	admin, err := n.server.Signer().Sign(auth.Claims{
		Identity: "dev-admin", Name: "Dev admin", Grants: auth.Grants{Admin: true},
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
	if a := n.MetricsAddr(); a != "" {
		fmt.Fprintf(&b, "  metrics:     http://%s/metrics\n", a)
	}
	b.WriteString(n.turnInfo("http://" + host)) // turn.go
	fmt.Fprintf(&b, "  token (room demo, publish+subscribe):\n    %s\n", tok)
	fmt.Fprintf(&b, "  load test:   go run ./cmd/halo-loadtest --url ws://%s/ws --room demo --token %s --viewers 50 --duration 30s\n", host, tok)
	fmt.Fprintf(&b, "  admin token (server API, every room: docs/api.md):\n    %s\n", admin)
	fmt.Fprintf(&b, "  moderators:  http://%s/admin/#token=%s\n\n", host, admin)
	_, _ = io.WriteString(w, b.String())
}
