package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// placeholderSecret is the auth.secret of config.example.yaml: refused
// outside dev mode, replaced by a generated secret in it.
const placeholderSecret = "change-me"

// minSecretLen is the shortest auth.secret accepted outside dev mode.
const minSecretLen = 32

// maxIDLen bounds node.id and node.region; they end up in Redis keys.
const maxIDLen = 63

// errSecret is the auth.secret problem outside dev mode. It never shows the
// secret.
const errSecret = "auth.secret: must be set to a random value of at least 32 characters " +
	"outside dev mode (generate one with: openssl rand -hex 32)"

// errDevKey is the problem of a "dev" key in the file or HALO_DEV.
const errDevKey = "only the --dev flag enables dev mode (remove this setting)"

// envDev is the variable that would be dev mode's, refused with errDevKey.
const envDev = envPrefix + "DEV"

// errDevSecret refuses a configured auth.secret in dev mode. It never shows
// the secret.
const errDevSecret = "auth.secret: is set, but dev mode (--dev) always generates its own secret " +
	"(its /dev/token signs tokens for anyone who asks); unset auth.secret / HALO_AUTH_SECRET, or run without --dev"

// Validate reports every problem of c at once, joined with errors.Join, each
// as "key: value reason" (for example `sfu.udp_port: 70000 is not a port`).
// It returns nil for a configuration the server can run with.
func (c *Config) Validate() error {
	var p problems

	p.name("node.id", c.Node.ID)
	p.name("node.region", c.Node.Region)
	p.between("node.max_viewers", c.Node.MaxViewers, 0, 1<<24)
	p.between("node.max_cpu", c.Node.MaxCPU, 0, 100)

	p.listen("http.listen", c.HTTP.Listen)
	if u := c.HTTP.PublicURL; u != "" && !isHTTPURL(u, true) {
		p.add("http.public_url", "%q is not an absolute http(s) URL such as https://live.example.com", u)
	}
	if len(c.HTTP.AllowedOrigins) == 0 {
		p.add("http.allowed_origins", `must not be empty (use "*" to allow any origin)`)
	}
	for _, o := range c.HTTP.AllowedOrigins {
		if o != "*" && !isHTTPURL(o, false) {
			p.add("http.allowed_origins", `%q is not "*" or an origin such as https://example.com`, o)
		}
	}

	for _, tp := range c.HTTP.TrustedProxies {
		if _, err := netip.ParsePrefix(tp); err != nil {
			if _, err := netip.ParseAddr(tp); err != nil {
				p.add("http.trusted_proxies", "%q is not an IP address or CIDR block such as 10.0.0.0/8", tp)
			}
		}
	}
	p.positive("http.read_header_timeout", c.HTTP.ReadHeaderTimeout)
	p.positive("http.read_timeout", c.HTTP.ReadTimeout)
	p.positive("http.idle_timeout", c.HTTP.IdleTimeout)
	p.between("http.max_conns_per_ip", c.HTTP.MaxConnsPerIP, 0, 1<<20)

	if c.Metrics.Listen != "" {
		p.listen("metrics.listen", c.Metrics.Listen)
		// Port 0 means "any free port": two such listeners never collide.
		if c.Metrics.Listen == c.HTTP.Listen && !strings.HasSuffix(c.HTTP.Listen, ":0") {
			p.add("metrics.listen", "%q is also http.listen; give metrics its own address", c.Metrics.Listen)
		}
	}

	c.SFU.validate(&p)
	c.validateAuth(&p)

	l := c.Limits
	p.between("limits.max_message_bytes", l.MaxMessageBytes, 1024, 1<<20)
	p.between("limits.joins_per_ip_per_minute", l.JoinsPerIPPerMinute, 0, 1<<20)
	p.between("limits.unjoined_sockets_per_ip", l.UnjoinedSocketsPerIP, 0, 1<<20)
	p.between("limits.pending_sessions_per_ip", l.PendingSessionsPerIP, 0, 1<<20)
	p.between("limits.pending_sessions_per_room", l.PendingSessionsPerRoom, 0, 1<<20)
	p.between("limits.messages_per_second", l.MessagesPerSecond, 1, 1<<20)
	p.between("limits.room_messages_per_second", l.RoomMessagesPerSecond, 0, 1<<20)
	p.between("limits.room_messages_burst", l.RoomMessagesBurst, 1, 1<<20)
	p.between("limits.api_requests_per_second", l.APIRequestsPerSecond, 1, 1<<20)
	p.between("limits.tracks_per_participant", l.TracksPerParticipant, 1, 256)
	p.between("limits.participants_per_room", l.ParticipantsPerRoom, 1, 10_000_000)
	p.between("limits.max_sdp_bytes", l.MaxSDPBytes, 1024, 1<<22)
	p.between("limits.max_media_sections", l.MaxMediaSections, 1, 1024)

	s := c.Signaling
	p.positive("signaling.ping_interval", s.PingInterval)
	p.positive("signaling.read_timeout", s.ReadTimeout)
	if s.PingInterval > 0 && s.ReadTimeout > 0 && s.ReadTimeout <= s.PingInterval {
		p.add("signaling.read_timeout", "%s must be longer than signaling.ping_interval (%s)",
			formatDuration(s.ReadTimeout), formatDuration(s.PingInterval))
	}
	p.between("signaling.send_queue", s.SendQueue, 1, 1<<16)
	p.positive("signaling.write_timeout", s.WriteTimeout)
	p.positive("signaling.join_timeout", s.JoinTimeout)
	p.positive("signaling.token_refresh_lead", s.TokenRefreshLead)

	if c.Room.EmptyTimeout < 0 {
		p.add("room.empty_timeout", "%s is negative", formatDuration(c.Room.EmptyTimeout))
	}
	if d := c.Room.RepublishGrace; d < 0 || d > 5*time.Minute {
		p.add("room.republish_grace", "%s is not between 0 and 5m", formatDuration(d))
	}

	c.validateRedis(&p)
	c.validateCluster(&p)
	c.validateTURN(&p)
	c.validateWebhooks(&p)
	c.validateHLS(&p)
	c.validateRecording(&p)

	p.positive("shutdown.timeout", c.Shutdown.Timeout)
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		p.add("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		p.add("log.format", "%q is not one of text, json", c.Log.Format)
	}
	return errors.Join(p...)
}

// Validate reports every problem of the sfu section, as Config.Validate
// does: the media engine checks the section it is given with it, so a
// section built without Load (a test, a tool) is held to the same rules.
func (s SFUConfig) Validate() error {
	var p problems
	s.validate(&p)
	return errors.Join(p...)
}

func (s SFUConfig) validate(p *problems) {
	p.port("sfu.udp_port", s.UDPPort)
	if s.UDPAddress != "" && net.ParseIP(s.UDPAddress) == nil {
		p.add("sfu.udp_address", "%q is not an IP address", s.UDPAddress)
	}
	p.port("sfu.tcp_port", s.TCPPort)
	for _, ip := range s.NAT1To1IPs {
		if net.ParseIP(ip) == nil {
			p.add("sfu.nat_1to1_ips", "%q is not an IP address", ip)
		}
	}
	for _, u := range s.ICEServers {
		scheme, rest, _ := strings.Cut(u, ":")
		switch scheme {
		case "stun", "stuns", "turn", "turns":
			if rest != "" {
				continue
			}
		}
		p.add("sfu.ice_servers", "%q is not a stun:, stuns:, turn: or turns: URL", u)
	}
	p.between("sfu.fanout_workers", s.FanoutWorkers, 0, 256)
	if n := s.PacketCache; n < 256 || n > 32768 || n&(n-1) != 0 {
		p.add("sfu.packet_cache", "%d is not a power of two between 256 and 32768", n)
	}
	if d := s.KeyframeInterval; d < 0 || d > 10*time.Second {
		p.add("sfu.keyframe_min_interval", "%s is not between 0 and 10s", formatDuration(d))
	}
	p.between("sfu.nack_budget", s.NACKBudget, 0, 100_000_000)
	if d := s.MaxLag; d < 50*time.Millisecond || d > 10*time.Second {
		p.add("sfu.max_lag", "%s is not between 50ms and 10s", formatDuration(d))
	}
	switch s.BandwidthEstimation {
	case "simulcast", "always", "off":
	default:
		p.add("sfu.bandwidth_estimation", "%q is not one of simulcast, always, off", s.BandwidthEstimation)
	}
}

func (c *Config) validateAuth(p *problems) {
	secret := c.Auth.Secret
	switch {
	case c.Dev && secret == "":
		p.add("auth.secret", "must not be empty (Load generates one in dev mode)")
	case !c.Dev && (len(secret) < minSecretLen || strings.Contains(strings.ToLower(secret), placeholderSecret)):
		*p = append(*p, errors.New(errSecret))
	}
	p.positive("auth.token_ttl", c.Auth.TokenTTL)
}

func (c *Config) validateRedis(p *problems) {
	r := c.Redis
	for _, addr := range r.Addrs {
		host, port, err := net.SplitHostPort(addr)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || host == "" || n < 1 || n > 65535 {
			p.add("redis.addrs", "%q is not a host:port address", addr)
		}
	}
	if r.DB < 0 {
		p.add("redis.db", "%d is negative", r.DB)
	}
	if r.DB != 0 && len(r.Addrs) > 1 {
		p.add("redis.db", "%d is not 0, the only database of a Redis Cluster (several redis.addrs)", r.DB)
	}
	if r.SentinelMaster != "" && len(r.Addrs) == 0 {
		p.add("redis.sentinel_master", "%q needs the sentinels' addresses in redis.addrs", r.SentinelMaster)
	}
	if r.SentinelMaster != "" && strings.ContainsAny(r.SentinelMaster, " \t\r\n") {
		p.add("redis.sentinel_master", "%q must not contain spaces", r.SentinelMaster)
	}
	if d := r.Timeout; d < 10*time.Millisecond || d > 10*time.Second {
		p.add("redis.timeout", "%s is not between 10ms and 10s", formatDuration(d))
	}
	if strings.ContainsAny(r.KeyPrefix, "{} \t\r\n") || len(r.KeyPrefix) > 64 {
		p.add("redis.key_prefix", "%q must be at most 64 characters without braces or spaces "+
			"(braces would break the hash tags that keep a room in one cluster slot)", r.KeyPrefix)
	}
}

// errClusterSecret is the cluster.secret problem outside dev mode. It never
// shows the secret.
const errClusterSecret = "cluster.secret: must be set to a random value of at least 32 characters " +
	"when redis.addrs is set outside dev mode; every node of the cluster shares it " +
	"(generate one with: openssl rand -hex 32)"

func (c *Config) validateCluster(p *problems) {
	cl := c.Cluster
	secret := cl.Secret
	weak := len(secret) < minSecretLen || strings.Contains(strings.ToLower(secret), placeholderSecret)
	switch {
	case !c.Dev && len(c.Redis.Addrs) > 0 && weak:
		*p = append(*p, errors.New(errClusterSecret))
	case !c.Dev && secret != "" && weak:
		// Set without Redis: still refuse a weak one, it would be used as soon
		// as Redis is named.
		*p = append(*p, errors.New(errClusterSecret))
	}
	if a := cl.RelayAddress; a != "" {
		host, port, err := net.SplitHostPort(a)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || host == "" || n < 1 || n > 65535 {
			p.add("cluster.relay_address", "%q is not a host:port address", a)
		}
	}
	p.positive("cluster.heartbeat_interval", cl.HeartbeatInterval)
	if d := cl.RelayGrace; d < 0 || d > 10*time.Minute {
		p.add("cluster.relay_grace", "%s is not between 0 and 10m", formatDuration(d))
	}
	if cl.HeartbeatInterval > 0 && cl.NodeTTL < 2*cl.HeartbeatInterval {
		p.add("cluster.node_ttl", "%s must be at least twice cluster.heartbeat_interval (%s), "+
			"or one late heartbeat drops the node", formatDuration(cl.NodeTTL), formatDuration(cl.HeartbeatInterval))
	}
}

// problems collects validation errors.
type problems []error

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

func (p *problems) port(key string, n int) {
	if n < 0 || n > 65535 {
		p.add(key, "%d is not a port", n)
	}
}

func (p *problems) between(key string, n, lo, hi int) {
	if n < lo || n > hi {
		p.add(key, "%d is not between %d and %d", n, lo, hi)
	}
}

func (p *problems) positive(key string, d time.Duration) {
	if d <= 0 {
		p.add(key, "%s is not a positive duration", formatDuration(d))
	}
}

// listen checks a host:port listen address; port 0 picks a free port.
func (p *problems) listen(key, addr string) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		p.add(key, "%q is not a host:port listen address such as :7880", addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		p.add(key, "%q does not have a port between 0 and 65535", addr)
	}
}

// name checks an identifier that ends up in Redis keys and URLs.
func (p *problems) name(key, s string) {
	ok := s != "" && len(s) <= maxIDLen
	for _, r := range s {
		ok = ok && isIDChar(r)
	}
	if !ok {
		p.add(key, "%q must be 1 to %d letters, digits, '.', '_' or '-'", s, maxIDLen)
	}
}

func isIDChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		r == '.' || r == '_' || r == '-'
}

// isHTTPURL reports whether s is an absolute http(s) URL with a host and no
// query, fragment or credentials; an origin (withPath false) has no path.
func isHTTPURL(s string, withPath bool) bool {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return false
	}
	return withPath || u.Path == "" || u.Path == "/"
}
