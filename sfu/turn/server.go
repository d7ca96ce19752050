package turn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/pion/stun/v4"
	pturn "github.com/pion/turn/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// Realm is the TURN realm of the embedded server.
const Realm = "halo"

// handshakeTimeout bounds a TLS handshake on the TLS port.
const handshakeTimeout = 10 * time.Second

// Options configure a Server. The node builds them from turn.* and the
// media engine's addresses.
type Options struct {
	// ListenIP is the IP the TURN ports bind to; "" is every interface.
	ListenIP string
	// Port is the UDP and TCP port; 0 picks a free one (tests).
	Port int
	// TLSPort is the TLS port; 0 with TLS false is none. 0 with TLS true
	// picks a free one (tests).
	TLSPort int
	// TLS serves TLSPort: with CertFile/KeyFile, or plain TCP when
	// ExternalTLS (a load balancer terminates TLS).
	TLS bool
	// CertFile and KeyFile are read again when they change.
	CertFile, KeyFile string
	// ExternalTLS serves TLSPort as plain TCP.
	ExternalTLS bool
	// RelayIP is the IP relay sockets bind to and announce.
	RelayIP netip.Addr
	// Peers are the node's media addresses, the only ones relayed to.
	Peers []netip.AddrPort
	// NAT1To1 are public IPs the node announces for its media port
	// (sfu.nat_1to1_ips): relayed to as well, through the local media
	// address behind them.
	NAT1To1 []netip.Addr
	// Secret checks the use-auth-secret credentials.
	Secret string
	// AllocationLifetime is granted per Allocate and Refresh.
	AllocationLifetime time.Duration
	// MaxPerIdentity and MaxPerIP cap live allocations; 0 is no cap.
	MaxPerIdentity, MaxPerIP int
	// MaxBitrate caps each direction of an allocation, bit/s; 0 is no cap.
	MaxBitrate int
	// TCPIdle closes a TCP or TLS client connection silent this long.
	// Default 2m: a live client sends ICE consent checks every few
	// seconds and refreshes within the allocation's lifetime.
	TCPIdle time.Duration
	// Log receives the server's logs; nil is slog.Default.
	Log *slog.Logger
}

// Server is the embedded TURN server. Close stops it and every goroutine
// it started.
type Server struct {
	opts    Options
	log     *slog.Logger
	relayIP netip.Addr
	peers   *peers
	relays  ownRelays
	quota   *quota
	metrics *metrics
	pion    *pturn.Server

	udp            net.PacketConn
	tcp, tlsLn     *trackedListener
	now            func() time.Time
	closeOnce      sync.Once
	udpAddr        netip.AddrPort
	tcpAddr, tlsAd netip.AddrPort
}

// New starts a TURN server for opts: its listeners are open when it returns.
func New(opts Options) (*Server, error) {
	if opts.Secret == "" {
		return nil, errors.New("turn: no secret")
	}
	if !opts.RelayIP.IsValid() || opts.RelayIP.IsUnspecified() {
		return nil, fmt.Errorf("turn: relay IP %v is not a specific address", opts.RelayIP)
	}
	if len(opts.Peers) == 0 {
		return nil, errors.New("turn: no media addresses to relay to")
	}
	if opts.AllocationLifetime <= 0 {
		opts.AllocationLifetime = 10 * time.Minute
	}
	if opts.TCPIdle <= 0 {
		opts.TCPIdle = 2 * time.Minute
	}
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		opts: opts, log: log.With("component", "turn"), relayIP: opts.RelayIP.Unmap(), peers: newPeers(opts.Peers, opts.NAT1To1),
		quota: newQuota(opts.MaxPerIdentity, opts.MaxPerIP), now: time.Now,
	}
	s.metrics = newMetrics(func(transport string) float64 { return float64(s.quota.countOver(transport)) })
	if err := s.listen(); err != nil {
		s.closeListeners()
		return nil, err
	}
	gen := relays{s}
	cfg := pturn.ServerConfig{
		Realm:              Realm,
		AuthHandler:        s.authenticate,
		QuotaHandler:       s.admit,
		LoggerFactory:      pionLogs{s.log},
		AllocationLifetime: opts.AllocationLifetime,
		EventHandler: pturn.EventHandler{
			OnAuth: func(_, _ net.Addr, _, _, _, _ string, ok bool) {
				if !ok {
					s.metrics.refused(ReasonBadCredentials)
				}
			},
			OnAllocationCreated: func(src, dst net.Addr, _, _, _ string, relay net.Addr, _ int) {
				t := s.transportOf(src, dst)
				s.quota.created(src, t)
				s.relays.created(relay, t)
				s.metrics.created.Inc()
			},
			OnAllocationDeleted: func(src, _ net.Addr, _, _, _ string) { s.quota.deleted(src) },
		},
		PacketConnConfigs: []pturn.PacketConnConfig{{PacketConn: s.udp, RelayAddressGenerator: gen, PermissionHandler: s.permit}},
		ListenerConfigs:   []pturn.ListenerConfig{{Listener: s.tcp, RelayAddressGenerator: gen, PermissionHandler: s.permit}},
	}
	if s.tlsLn != nil {
		cfg.ListenerConfigs = append(cfg.ListenerConfigs, pturn.ListenerConfig{Listener: s.tlsLn, RelayAddressGenerator: gen, PermissionHandler: s.permit})
	}
	p, err := pturn.NewServer(cfg)
	if err != nil {
		s.closeListeners()
		return nil, fmt.Errorf("turn: %w", err)
	}
	s.pion = p
	tlsAddr := "off"
	if s.tlsAd.IsValid() {
		tlsAddr = s.tlsAd.String()
	}
	s.log.Info("turn: serving", "udp", s.udpAddr.String(), "tcp", s.tcpAddr.String(), "tls", tlsAddr,
		"external_tls", opts.ExternalTLS, "relay_ip", s.relayIP.String(), "peers", fmt.Sprint(opts.Peers))
	return s, nil
}

func (s *Server) listen() error {
	host := s.opts.ListenIP
	udp, tcp, err := listenPair(host, s.opts.Port)
	if err != nil {
		return err
	}
	s.udp = udp
	s.udpAddr = udp.LocalAddr().(*net.UDPAddr).AddrPort()
	s.tcp = newTrackedListener(tcp, nil, s.opts.MaxPerIP, s.opts.TCPIdle, s.metrics)
	s.tcpAddr = tcp.Addr().(*net.TCPAddr).AddrPort()
	if !s.opts.TLS {
		return nil
	}
	var tcfg *tls.Config
	if !s.opts.ExternalTLS {
		c, err := newCerts(s.opts.CertFile, s.opts.KeyFile, s.log)
		if err != nil {
			return err
		}
		tcfg = &tls.Config{GetCertificate: c.get, MinVersion: tls.VersionTLS12}
	}
	tl, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(s.opts.TLSPort)))
	if err != nil {
		return fmt.Errorf("turn: listen TLS port %d: %w", s.opts.TLSPort, err)
	}
	s.tlsLn = newTrackedListener(tl, tcfg, s.opts.MaxPerIP, s.opts.TCPIdle, s.metrics)
	s.tlsAd = tl.Addr().(*net.TCPAddr).AddrPort()
	return nil
}

// listenPair opens UDP and TCP on one port of host. Port 0 (tests) takes
// a free UDP port and TCP on the same number, trying other ports while
// another process holds that number over TCP.
func listenPair(host string, port int) (net.PacketConn, net.Listener, error) {
	for try := 0; ; try++ {
		udp, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return nil, nil, fmt.Errorf("turn: listen UDP port %d: %w", port, err)
		}
		p := udp.LocalAddr().(*net.UDPAddr).Port
		tcp, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err == nil {
			return udp, tcp, nil
		}
		_ = udp.Close()
		if port != 0 || try == 20 {
			return nil, nil, fmt.Errorf("turn: listen TCP port %d: %w", p, err)
		}
	}
}

// authenticate is pion's AuthHandler for use-auth-secret credentials. An
// expired credential cannot open an allocation; the Refresh, permissions
// and channels of an allocation opened in time go on with it (they reach
// only that allocation), so a long watch is not cut at the expiry.
func (s *Server) authenticate(ra *pturn.RequestAttributes) (string, []byte, bool) {
	expiry, identity, err := ParseUsername(ra.Username)
	if err != nil {
		s.metrics.refused(ReasonBadCredentials)
		return "", nil, false
	}
	if ra.Method == stun.MethodAllocate && !s.now().Before(expiry) {
		s.metrics.refused(ReasonExpired)
		return "", nil, false
	}
	return identity, pturn.GenerateAuthKey(ra.Username, ra.Realm, Password(s.opts.Secret, ra.Username)), true
}

// transportOf names how a client at src reached the server at dst: udp,
// tcp, or tls (the TLS port, TLS terminated here or in front).
func (s *Server) transportOf(src, dst net.Addr) string {
	if _, ok := src.(*net.UDPAddr); ok {
		return "udp"
	}
	if d, ok := dst.(*net.TCPAddr); ok && s.tlsAd.IsValid() && d.AddrPort().Port() == s.tlsAd.Port() {
		return "tls"
	}
	return "tcp"
}

// admit is pion's QuotaHandler.
func (s *Server) admit(identity, _ string, src net.Addr) bool {
	if reason := s.quota.reserve(identity, src, s.now()); reason != "" {
		s.metrics.refused(reason)
		s.log.Debug("turn: allocation refused", "reason", reason, "identity", identity, "client", src.String())
		return false
	}
	return true
}

// UDPAddr is the address of the UDP port (TCP shares its port number).
func (s *Server) UDPAddr() netip.AddrPort { return s.udpAddr }

// TCPAddr is the address of the TCP port.
func (s *Server) TCPAddr() netip.AddrPort { return s.tcpAddr }

// TLSAddr is the address of the TLS port; invalid when TLS is off.
func (s *Server) TLSAddr() netip.AddrPort { return s.tlsAd }

// RelayTransport says how the client of the live allocation whose relay
// address is ap reaches this server: "udp", "tcp" or "tls" (the TLS port,
// TLS terminated here or in front); "" when ap is no relay of this server.
// The media engine names a relayed peer's transport with it.
func (s *Server) RelayTransport(ap netip.AddrPort) string {
	return s.relays.transportOf(ap)
}

// Allocations is the number of live allocations.
func (s *Server) Allocations() int { return s.quota.count() }

// RegisterMetrics registers the server's series on reg.
func (s *Server) RegisterMetrics(reg prometheus.Registerer) error {
	for _, c := range s.metrics.collectors() {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("turn: metrics: %w", err)
		}
	}
	return nil
}

// Close stops the server: listeners, client connections, allocations.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		if s.pion != nil {
			err = s.pion.Close()
		}
		s.closeListeners()
		if s.pion != nil {
			s.waitAllocations()
		}
	})
	return err
}

func (s *Server) closeListeners() {
	if s.udp != nil {
		_ = s.udp.Close()
	}
	for _, l := range []*trackedListener{s.tcp, s.tlsLn} {
		if l != nil {
			_ = l.Close()
		}
	}
}

// waitAllocations waits (briefly) until pion has deleted the allocations
// of the closed listeners, so their goroutines are gone when Close returns.
func (s *Server) waitAllocations() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for s.pion.AllocationCount() > 0 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
}
