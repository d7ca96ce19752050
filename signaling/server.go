package signaling

import (
	"context"
	"encoding/json"

	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/room"
	"github.com/halobuzz/live/signaling/auth"
)

// Server is a node's HTTP edge: /ws, /whip, /whep, the web page, health.
type Server struct {
	cfg    Config
	rooms  *room.Manager
	signer *auth.Signer
	// clusterSigner verifies node-to-node relay tokens (cluster.secret);
	// nil alone.
	clusterSigner *auth.Signer
	log           *slog.Logger
	metrics       *Metrics
	joins         *keyedLimiter
	addrs         clientAddrs
	// unjoined counts, per client address, WebSockets not joined yet
	// (limits.unjoined_sockets_per_ip).
	unjoined *counter
	// pending counts viewer sessions whose media connection is not up yet,
	// per address and per room (pending.go).
	pending *pendingSessions
	up      websocket.Upgrader

	draining atomic.Bool
	conns    sync.WaitGroup
	connsMu  sync.Mutex // orders conns.Add before Drain's Wait
	whip     *sessions
	// relayIDs remembers the relay tokens used (one request each), relays
	// the relays each requesting node holds (relayguard.go).
	relayIDs *replayGuard
	relays   *relaySlots
	// hls serves /hls/ (hls.go); nil: hls.enabled is false.
	hls http.Handler
	// recorder starts and stops recordings (api_recording.go); nil:
	// recording.enabled is false.
	recorder room.Recorder
}

// Config is what signalling reads of the node's configuration: its
// sections, whole, and the few values of other sections it passes on or
// depends on.
type Config struct {
	HTTP      config.HTTPConfig
	Signaling config.SignalingConfig
	Limits    config.LimitsConfig
	Auth      config.AuthConfig
	Cluster   config.ClusterConfig
	Node      config.NodeConfig
	// ICEServers are sfu.ice_servers, handed to clients.
	ICEServers []string
	// Clustered: redis.addrs is set, the node is one of a cluster.
	Clustered bool
	// Dev: the node runs in dev mode (--dev).
	Dev bool
	// Turn is the TURN section: the URLs and lifetime of the TURN
	// credentials handed to clients (iceservers.go).
	Turn config.TURNConfig
	// TURNSecret makes those credentials (config.Config.TURNSecret).
	TURNSecret string
}

// ConfigOf picks signalling's part of a whole configuration.
func ConfigOf(c *config.Config) Config {
	return Config{HTTP: c.HTTP, Signaling: c.Signaling, Limits: c.Limits, Auth: c.Auth, Cluster: c.Cluster,
		Node: c.Node, ICEServers: c.SFU.ICEServers, Clustered: len(c.Redis.Addrs) > 0, Dev: c.Dev,
		Turn: c.Turn, TURNSecret: c.TURNSecret()}
}

// New returns a Server for cfg serving rooms, counting in metrics.
func New(cfg Config, rooms *room.Manager, metrics *Metrics, log *slog.Logger) (*Server, error) {
	signer, err := auth.NewSigner([]byte(cfg.Auth.Secret))
	if err != nil {
		return nil, fmt.Errorf("signaling: auth.secret: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		cfg: cfg, rooms: rooms, signer: signer, log: log.With("component", "signaling"),
		metrics: metrics, joins: newJoinLimiter(cfg.Limits.JoinsPerIPPerMinute),
		addrs: newClientAddrs(cfg.HTTP.TrustedProxies), unjoined: newCounter(cfg.Limits.UnjoinedSocketsPerIP),
		pending:  newPendingSessions(cfg.Limits.PendingSessionsPerIP, cfg.Limits.PendingSessionsPerRoom),
		whip:     newSessions(),
		relayIDs: newReplayGuard(maxRelayTokenIDs), relays: newRelaySlots(maxRelaysPerNode, rooms),
	}
	if cfg.Cluster.Secret != "" {
		if s.clusterSigner, err = auth.NewSigner([]byte(cfg.Cluster.Secret)); err != nil {
			return nil, fmt.Errorf("signaling: cluster.secret: %w", err)
		}
	}
	s.up = websocket.Upgrader{
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
		CheckOrigin:     s.originAllowed,
	}
	return s, nil
}

// Signer returns the token signer (dev mode prints a token with it).
func (s *Server) Signer() *auth.Signer { return s.signer }

func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not a browser
	}
	for _, o := range s.cfg.HTTP.AllowedOrigins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	// Same origin is always fine.
	return strings.EqualFold(strings.TrimPrefix(strings.TrimPrefix(origin, "http://"), "https://"), r.Host)
}

// Handler returns the HTTP routes of the node.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", s.handleWS)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		if s.draining.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("draining\n"))
			return
		}
		if !s.rooms.ClusterReady() {
			// Redis is unreachable: what runs goes on, but a room new to
			// this node would be refused; a load balancer sends new clients
			// to a node that can take them.
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("cluster_unavailable: the shared room state (Redis) is unreachable; established sessions continue\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	if s.cfg.Dev {
		mux.HandleFunc("GET /dev/token", s.handleDevToken)
		mux.HandleFunc("/dev/token", methodNotAllowed("GET, HEAD"))
	}
	for _, p := range []string{"/ws", "/healthz", "/readyz"} {
		mux.HandleFunc(p, methodNotAllowed("GET, HEAD"))
	}
	s.routeWHIP(mux)
	s.routeAdmin(mux)
	s.routeAPI(mux) // api.go
	if s.clustered() && s.cfg.Cluster.RelayAddress == "" {
		s.routeRelay(mux) // else on its own listener (RelayHandler)
	}
	s.routeCheck(mux) // the connection check page: check.go
	s.routeHLS(mux)   // LL-HLS: hls.go
	s.routeWeb(mux)
	return s.recoverPanics(s.withTURNLinks(mux)) // TURN credentials for WHIP/WHEP: iceservers.go
}

func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		http.Error(w, "server_shutting_down: this node is draining", http.StatusServiceUnavailable)
		return
	}
	ip := s.clientIP(r)
	release := func() {}
	if !s.devLoopback(ip) {
		a, _ := netip.ParseAddr(ip)
		var ok bool
		if release, ok = s.unjoined.acquire(limitKey(a, ip)); !ok {
			s.httpError(w, newError(CodeRateLimited, "too many sockets from this address waiting to join"))
			return
		}
	}
	conn, err := s.up.Upgrade(w, r, nil)
	if err != nil {
		release()
		return // the upgrader has answered
	}
	if target := s.regionTarget(r); target != "" {
		// The client's region has a node of its own (region.go): tell the
		// client where, and close.
		release()
		_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
		_ = conn.WriteMessage(websocket.TextMessage, encode("redirect", 0, redirectData{URL: wsURL(target), Reason: "region"}))
		_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "redirect"))
		_ = conn.Close()
		return
	}
	// The HTTP server's read deadline (http.read_timeout) is for requests;
	// from now on the WebSocket's own deadlines apply.
	_ = conn.NetConn().SetDeadline(time.Time{})
	// A socket upgraded while Drain starts is refused here, so that no Add
	// can race with Drain's Wait.
	s.connsMu.Lock()
	if s.draining.Load() {
		s.connsMu.Unlock()
		release()
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server_shutting_down"), time.Now().Add(time.Second))
		_ = conn.Close()
		return
	}
	s.conns.Add(1)
	s.connsMu.Unlock()
	go func() {
		defer s.conns.Done()
		s.serveWS(conn, ip, r.Host, release)
	}()
}

// authorize checks a token for room (or the token's room when room is
// empty) and returns the participant it describes, the room and the token's
// expiry.
func (s *Server) authorize(token, roomName string, now time.Time) (room.ParticipantSpec, string, time.Time, error) {
	spec, roomName, claims, err := s.verify(token, roomName, now)
	return spec, roomName, claims.ExpiresAt, err
}

func (s *Server) verify(token, roomName string, now time.Time) (room.ParticipantSpec, string, auth.Claims, error) {
	if token == "" {
		return room.ParticipantSpec{}, "", auth.Claims{}, newError(CodeUnauthorized, "token is missing")
	}
	claims, err := s.signer.Verify(token, now)
	if err != nil {
		if toWire(err).Code != CodeUnauthorized {
			err = fmt.Errorf("%w: %w", auth.ErrMalformed, err) // any token failure is unauthorized
		}
		return room.ParticipantSpec{}, "", auth.Claims{}, err
	}
	if roomName == "" {
		roomName = claims.Room
	}
	if !auth.ValidRoomName(roomName) {
		return room.ParticipantSpec{}, "", auth.Claims{}, newError(CodeBadRequest, "room must be 1..64 characters of A-Z a-z 0-9 _ . -")
	}
	if !claims.RoomAllowed(roomName) {
		return room.ParticipantSpec{}, "", auth.Claims{}, newError(CodeRoomMismatch, fmt.Sprintf("the token is not valid for room %q", roomName))
	}
	return room.ParticipantSpec{
		Identity: claims.Identity, Name: claims.Name,
		Publish: claims.Grants.Publish || claims.Grants.Admin, Subscribe: claims.Grants.Subscribe || claims.Grants.Admin,
	}, roomName, claims, nil
}

// handleDevToken mints a token in dev mode only, for the web page and for
// trying the server out: /dev/token?room=demo&identity=alice&publish=1
func (s *Server) handleDevToken(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	roomName := q.Get("room")
	if !auth.ValidRoomName(roomName) {
		http.Error(w, "bad_request: room must be 1..64 characters of A-Z a-z 0-9 _ . -", http.StatusBadRequest)
		return
	}
	identity := q.Get("identity")
	if identity == "" || len(identity) > 128 {
		identity = fmt.Sprintf("guest-%d", time.Now().UnixNano()%100000)
	}
	tok, err := s.signer.Sign(auth.Claims{
		Identity: identity, Name: identity, Room: roomName,
		Grants:    auth.Grants{Publish: q.Get("publish") == "1", Subscribe: true},
		ExpiresAt: time.Now().Add(s.cfg.Auth.TokenTTL), IssuedAt: time.Now(),
	})
	if err != nil {
		s.log.Error("dev token", "err", err)
		http.Error(w, CodeInternal+": "+internalMessage, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]string{"token": tok, "room": roomName, "identity": identity})
}

// Drain stops accepting new sessions (readyz turns 503), removes every
// participant with a server_shutting_down error, and waits for their
// connections to end or ctx.
func (s *Server) Drain(ctx context.Context) error {
	s.connsMu.Lock()
	s.draining.Store(true)
	s.connsMu.Unlock()
	err := s.rooms.Drain(ctx)
	done := make(chan struct{})
	go func() {
		s.conns.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	s.whip.closeAll()
	return err
}
