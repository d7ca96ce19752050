package config

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"time"
)

// Config is the effective configuration of one halo-sfu process. The
// mapstructure tags are the keys used in the YAML file; the HALO_* variable of
// a key is derived from it (sfu.udp_port -> HALO_SFU_UDP_PORT).
type Config struct {
	// Dev turns on dev mode: loopback ICE candidates, a generated secret,
	// /dev/token and a token printed at start-up. Never for production. Only
	// the --dev flag sets it: it is not a key of the file nor a HALO_*
	// variable, so a stray setting cannot open /dev/token on a production
	// node.
	Dev bool `mapstructure:"-"`
	// PrintConfig is set by --print-config: print the effective configuration
	// (secrets masked) and exit.
	PrintConfig bool `mapstructure:"-"`
	// ConfigFile is the YAML file that was read, from --config or HALO_CONFIG;
	// empty when none was.
	ConfigFile string `mapstructure:"-"`

	// Node identifies this process in a cluster.
	Node NodeConfig `mapstructure:"node"`
	// HTTP is the signalling and web page listener.
	HTTP HTTPConfig `mapstructure:"http"`
	// Metrics is the Prometheus listener.
	Metrics MetricsConfig `mapstructure:"metrics"`
	// SFU configures the media plane.
	SFU SFUConfig `mapstructure:"sfu"`
	// Auth configures access tokens.
	Auth AuthConfig `mapstructure:"auth"`
	// Limits bounds what one client may ask of the server.
	Limits LimitsConfig `mapstructure:"limits"`
	// Signaling tunes WebSocket connections.
	Signaling SignalingConfig `mapstructure:"signaling"`
	// Room configures room lifetime.
	Room RoomConfig `mapstructure:"room"`
	// Redis names the Redis shared by a cluster; none means a single node.
	Redis RedisConfig `mapstructure:"redis"`
	// Cluster configures how this node takes part in a cluster (with Redis).
	Cluster ClusterConfig `mapstructure:"cluster"`
	// Turn configures the embedded TURN server and the TURN credentials
	// handed to clients (config/turn.go).
	Turn TURNConfig `mapstructure:"turn"`
	// Webhooks tells an app backend what happens in the rooms
	// (config/webhooks.go).
	Webhooks WebhooksConfig `mapstructure:"webhooks"`
	// HLS configures the LL-HLS output at /hls/ (config/hls.go).
	HLS HLSConfig `mapstructure:"hls"`
	// Recording uploads rooms' recordings to an S3-compatible store
	// (config/recording.go).
	Recording RecordingConfig `mapstructure:"recording"`
	// Shutdown configures draining on SIGTERM.
	Shutdown ShutdownConfig `mapstructure:"shutdown"`
	// Log configures log output.
	Log LogConfig `mapstructure:"log"`
}

// NodeConfig identifies this process in a cluster.
type NodeConfig struct {
	// ID is unique per node across the cluster. Default: the host name, or
	// "node-" and a short random suffix when the host name is unavailable.
	// An empty value in the file or environment means that default.
	ID string `mapstructure:"id"`
	// Region groups nodes that are close to each other; viewers are steered to
	// a node in their own region. Default "local".
	Region string `mapstructure:"region"`
	// MaxViewers caps the participants this node serves: viewers (joining
	// or watching) and broadcasters; relays to other nodes are not counted.
	// Beyond it a new join is refused with node_full (retryable), or in a
	// cluster sent to the least loaded node of the region. Default 0: no cap.
	MaxViewers int `mapstructure:"max_viewers"`
	// MaxCPU is the process's CPU use, in percent of the machine's CPUs
	// (measured over the last second or more), beyond which new joins are
	// refused or sent elsewhere as beyond MaxViewers. Default 0: no cap;
	// 1..100.
	MaxCPU int `mapstructure:"max_cpu"`
}

// HTTPConfig is the listener for signalling (WebSocket, WHIP, WHEP) and the
// web page.
type HTTPConfig struct {
	// Listen is the host:port to listen on. Default ":7880"; in dev mode
	// "127.0.0.1:7880" unless set (dev mode serves /dev/token).
	Listen string `mapstructure:"listen"`
	// PublicURL is the absolute http(s) URL clients and other nodes use to
	// reach this node. Default "": the server derives one.
	PublicURL string `mapstructure:"public_url"`
	// AllowedOrigins lists the browser origins allowed by CORS and by the
	// WebSocket origin check; "*" allows any. Default ["*"].
	AllowedOrigins []string `mapstructure:"allowed_origins"`
	// TrustedProxies are the IPs or CIDR blocks of reverse proxies in front
	// of the node. From them, the rightmost X-Forwarded-For address that is
	// not itself a trusted proxy names the client (per-IP limits, logs);
	// from anyone else X-Forwarded-For is ignored. Connections from trusted
	// proxies are not counted by MaxConnsPerIP. Default [].
	TrustedProxies []string `mapstructure:"trusted_proxies"`
	// ReadHeaderTimeout bounds reading a request's headers. Default 10s.
	ReadHeaderTimeout time.Duration `mapstructure:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request, body included (a WHIP
	// offer); WebSockets are exempt once upgraded. Default 30s.
	ReadTimeout time.Duration `mapstructure:"read_timeout"`
	// IdleTimeout closes a keep-alive connection idle between requests for
	// this long. Default 60s.
	IdleTimeout time.Duration `mapstructure:"idle_timeout"`
	// MaxConnsPerIP caps the open TCP connections (WebSockets included) from
	// one client address (an IPv6 /64); further ones are answered 429 and
	// closed. Trusted proxies are exempt, and loopback in dev mode. Default
	// 256; 0 means unlimited.
	MaxConnsPerIP int `mapstructure:"max_conns_per_ip"`
}

// MetricsConfig is the Prometheus listener.
type MetricsConfig struct {
	// Listen is the host:port serving /metrics. Default "127.0.0.1:7881"
	// (this machine only); "" disables the listener.
	Listen string `mapstructure:"listen"`
	// Pprof serves Go's profiles under /debug/pprof/ on the metrics listener.
	// Default false: profiles reveal internals and cost CPU while taken.
	Pprof bool `mapstructure:"pprof"`
}

// SFUConfig configures the media plane.
type SFUConfig struct {
	// UDPPort is the one UDP port all peers share (UDP mux). Default 7882;
	// 0 picks any free port (tests).
	UDPPort int `mapstructure:"udp_port"`
	// UDPAddress is the IP to bind the UDP port to. Default "": all
	// interfaces.
	UDPAddress string `mapstructure:"udp_address"`
	// TCPPort is the ICE-TCP port. Default 0: ICE-TCP disabled.
	TCPPort int `mapstructure:"tcp_port"`
	// NAT1To1IPs are public IPs announced as host candidates when the node
	// sits behind a 1:1 NAT. Each must be an IP address.
	NAT1To1IPs []string `mapstructure:"nat_1to1_ips"`
	// IncludeLoopback gathers loopback candidates. Default false; Load turns
	// it on in dev mode unless it was explicitly set to false.
	IncludeLoopback bool `mapstructure:"include_loopback"`
	// ICEServers are stun:, stuns:, turn: or turns: URLs handed to clients.
	ICEServers []string `mapstructure:"ice_servers"`
	// FanoutWorkers is the number of goroutines spreading packets over
	// down-tracks. Default 0: GOMAXPROCS. At most 256.
	FanoutWorkers int `mapstructure:"fanout_workers"`
	// PacketCache is the number of packets kept per published track, shared
	// by its viewers, to answer NACKs and to start late joiners at a keyframe.
	// A power of two in 256..32768; default 2048.
	PacketCache int `mapstructure:"packet_cache"`
	// KeyframeInterval is the minimum gap between keyframe requests sent to a
	// publisher per track, so joining viewers cannot cause a request storm.
	// Default 500ms; 0..10s (0: no minimum gap).
	KeyframeInterval time.Duration `mapstructure:"keyframe_min_interval"`
	// NACKBudget is the most each viewer may have retransmitted, in bytes
	// per second; NACKs beyond it are dropped and counted. 0 is unlimited.
	// Default 262144 (2 Mbit/s); 0..100000000.
	NACKBudget int `mapstructure:"nack_budget"`
	// BandwidthEstimation estimates viewers' downlinks (transport-cc
	// feedback, Google congestion control) and gives each the simulcast
	// layer that fits: "simulcast" (default) for viewers of rooms with a
	// simulcast track, "always" for every viewer, "off".
	BandwidthEstimation string `mapstructure:"bandwidth_estimation"`
	// PionViewers keeps each WHEP viewer's connection in Pion for its
	// whole life. Default false: once a viewer's connection is up, the
	// engine takes it over (consent checks, RTCP, sender reports) and
	// closes Pion's, which saves 13 goroutines and about 120 KiB per
	// viewer. A switch to turn that off if a client misbehaves with it.
	PionViewers bool `mapstructure:"pion_viewers"`
	// MaxLag is how far a viewer may fall behind the newest packet of its
	// track when the node is overloaded: a forwarder further behind skips
	// its viewers ahead to the newest picture instead of sending the
	// backlog. Default 500ms; 50ms..10s.
	MaxLag time.Duration `mapstructure:"max_lag"`
}

// AuthConfig configures access tokens.
type AuthConfig struct {
	// Secret signs and verifies access tokens. Required outside dev mode: at
	// least 32 characters, random. Default "".
	Secret string `mapstructure:"secret"`
	// TokenTTL is the lifetime of tokens the server issues. Default 24h.
	TokenTTL time.Duration `mapstructure:"token_ttl"`
	// SecretGenerated reports that Load generated Secret (always in dev
	// mode, which refuses a configured secret).
	SecretGenerated bool `mapstructure:"-"`
}

// LimitsConfig bounds what one client may ask of the server. Every limit is
// answered with a clear error to the client.
type LimitsConfig struct {
	// MaxMessageBytes is the largest signalling message accepted.
	// Default 65536; 1024..1<<20.
	MaxMessageBytes int `mapstructure:"max_message_bytes"`
	// JoinsPerIPPerMinute limits joins (and WHIP/WHEP sessions) from one
	// client address (an IPv6 /64). Default 120; 0 means unlimited.
	JoinsPerIPPerMinute int `mapstructure:"joins_per_ip_per_minute"`
	// UnjoinedSocketsPerIP caps the WebSockets from one client address (an
	// IPv6 /64) that are open but have not joined yet; a further upgrade is
	// answered 429. Default 16; 0 means unlimited.
	UnjoinedSocketsPerIP int `mapstructure:"unjoined_sockets_per_ip"`
	// PendingSessionsPerIP caps the viewer media sessions from one client
	// address (an IPv6 /64) whose connection is not up yet: WHEP sessions
	// answered 201, WebSocket subscriber connections offered. A further one
	// is refused (too_many_pending, WHEP 429 with Retry-After) until one
	// connects or ends. Default 20 (a household or an office behind one NAT
	// starting together); 0 means unlimited.
	PendingSessionsPerIP int `mapstructure:"pending_sessions_per_ip"`
	// PendingSessionsPerRoom caps the viewer media sessions of one room on
	// this node whose connection is not up yet, from all addresses
	// together. Default 500; 0 means unlimited.
	PendingSessionsPerRoom int `mapstructure:"pending_sessions_per_room"`
	// MessagesPerSecond limits signalling messages per connection. Default 50.
	MessagesPerSecond int `mapstructure:"messages_per_second"`
	// RoomMessagesPerSecond limits chat messages and reactions per room, from
	// all its participants together (each socket is also under
	// MessagesPerSecond). Default 20; 0 means unlimited.
	RoomMessagesPerSecond int `mapstructure:"room_messages_per_second"`
	// RoomMessagesBurst is how many chat messages and reactions a room
	// accepts at once above its rate. Default 40.
	RoomMessagesBurst int `mapstructure:"room_messages_burst"`
	// APIRequestsPerSecond limits the server API's calls per bearer token
	// (/api/v1/, bursts of twice as many); over it a call gets 429
	// rate_limited. Default 10.
	APIRequestsPerSecond int `mapstructure:"api_requests_per_second"`
	// TracksPerParticipant limits published tracks per participant. Default 8.
	TracksPerParticipant int `mapstructure:"tracks_per_participant"`
	// ParticipantsPerRoom limits participants in one room, viewers included.
	// Default 10000.
	ParticipantsPerRoom int `mapstructure:"participants_per_room"`
	// MaxSDPBytes is the largest SDP accepted, over WebSocket or as a
	// WHIP/WHEP body. Default 65536.
	MaxSDPBytes int `mapstructure:"max_sdp_bytes"`
	// MaxMediaSections is the most m-lines accepted in one SDP. Default 16.
	MaxMediaSections int `mapstructure:"max_media_sections"`
}

// SignalingConfig tunes WebSocket connections.
type SignalingConfig struct {
	// PingInterval is how often the server pings a client. Default 10s.
	PingInterval time.Duration `mapstructure:"ping_interval"`
	// ReadTimeout closes a connection silent for this long; longer than
	// PingInterval. Default 30s.
	ReadTimeout time.Duration `mapstructure:"read_timeout"`
	// SendQueue is the number of outgoing messages buffered per connection
	// before the client is considered too slow. Default 256.
	SendQueue int `mapstructure:"send_queue"`
	// WriteTimeout bounds one write to a client. Default 10s.
	WriteTimeout time.Duration `mapstructure:"write_timeout"`
	// JoinTimeout closes a socket that has not joined this long after it
	// opened. Default 10s.
	JoinTimeout time.Duration `mapstructure:"join_timeout"`
	// TokenRefreshLead is how long before a joined socket's token expires
	// the server sends token_expiring (at most half the token's remaining
	// life, for short tokens). Default 60s.
	TokenRefreshLead time.Duration `mapstructure:"token_refresh_lead"`
}

// RoomConfig configures room lifetime.
type RoomConfig struct {
	// EmptyTimeout is how long a room without participants lives on.
	// Default 10s; 0 closes it at once.
	EmptyTimeout time.Duration `mapstructure:"empty_timeout"`
	// RepublishGrace is how long a track whose publisher's connection was
	// lost (not a leave, an unpublish or a WHIP DELETE) is kept for the
	// publisher to return: its viewers, WebSocket and WHEP, are moved to
	// the republished track without renegotiating. 0 ends it at once.
	// Default 10s; 0..5m.
	RepublishGrace time.Duration `mapstructure:"republish_grace"`
}

// RedisConfig names the Redis shared by a cluster.
type RedisConfig struct {
	// Addrs are host:port addresses. Empty: state in memory, single node.
	// One address is a single Redis; several are a Redis Cluster.
	Addrs []string `mapstructure:"addrs"`
	// Username is the Redis ACL user; "" for the default user.
	Username string `mapstructure:"username"`
	// Password is the Redis password (a secret).
	Password string `mapstructure:"password"`
	// DB is the database number; a Redis Cluster only has 0.
	DB int `mapstructure:"db"`
	// KeyPrefix starts every key the server writes. Default "halo:".
	KeyPrefix string `mapstructure:"key_prefix"`
	// SentinelMaster is the name of the primary that Redis Sentinel watches;
	// set, Addrs are the sentinels. Default "": no Sentinel.
	SentinelMaster string `mapstructure:"sentinel_master"`
	// SentinelPassword authenticates to the Sentinels themselves (a
	// secret); "" when they need none. Default "".
	SentinelPassword string `mapstructure:"sentinel_password"`
	// TLS connects to Redis over TLS (system roots). Default false.
	TLS bool `mapstructure:"tls"`
	// Timeout bounds dialling and each Redis call, so a Redis that does not
	// answer fails joins fast instead of stalling them. Default 500ms;
	// 10ms..10s.
	Timeout time.Duration `mapstructure:"timeout"`
}

// ClusterConfig configures how a node takes part in a cluster. Its id,
// region and public URL are node.id, node.region and http.public_url.
type ClusterConfig struct {
	// Secret authenticates node-to-node requests (relays). Required when
	// redis.addrs is set outside dev mode: at least 32 random characters.
	// Default "".
	Secret string `mapstructure:"secret"`
	// RelayAddress is the host:port other nodes use to reach this node's
	// relay endpoint. Default "": the node's public URL host.
	RelayAddress string `mapstructure:"relay_address"`
	// HeartbeatInterval is how often the node renews its registry entry and
	// the leases on what it wrote. Default 2s.
	HeartbeatInterval time.Duration `mapstructure:"heartbeat_interval"`
	// NodeTTL is the lease of everything the node writes to Redis: a node
	// that stops heartbeating vanishes this long after its last beat. At
	// least twice heartbeat_interval. Default 6s.
	NodeTTL time.Duration `mapstructure:"node_ttl"`
	// RelayGrace is how long a relay from another node stays up after the
	// room's last viewer on this node left, so a viewer who comes back at
	// once does not wait for a new one. Default 10s; 0..10m.
	RelayGrace time.Duration `mapstructure:"relay_grace"`
	// RelayTrunks carries every room's relays between two nodes on one
	// connection (a trunk) instead of a connection per room. An edge uses
	// a trunk toward an origin that serves them (its registry entry says
	// so); toward an older node, or one with trunks off, it relays per
	// room as before, so a rolling upgrade mixes both. Experimental:
	// default false (docs/operations.md, "Relay trunks", says why).
	RelayTrunks bool `mapstructure:"relay_trunks"`
	// RegionRedirect sends a client that names another region (?region= or
	// RegionHeader) to a live node of that region: WHIP/WHEP get 307, a
	// WebSocket a redirect message. Default false.
	RegionRedirect bool `mapstructure:"region_redirect"`
	// RegionHeader is a request header (set by a load balancer) naming the
	// client's region when the request has no ?region=. Default "".
	RegionHeader string `mapstructure:"region_header"`
}

// ShutdownConfig configures draining on SIGTERM.
type ShutdownConfig struct {
	// Timeout bounds draining before the process exits anyway. Default 10s.
	Timeout time.Duration `mapstructure:"timeout"`
}

// LogConfig configures log/slog output.
type LogConfig struct {
	// Level is one of debug, info, warn, error. Default "info".
	Level string `mapstructure:"level"`
	// Format is text or json. Default "text".
	Format string `mapstructure:"format"`
}

// Default returns the built-in defaults. They are valid except for
// Auth.Secret, which is empty: production needs a real one and dev mode gets
// a generated one from Load.
func Default() *Config {
	return &Config{
		Node: NodeConfig{ID: defaultNodeID(), Region: "local"},
		HTTP: HTTPConfig{
			Listen:            ":7880",
			AllowedOrigins:    []string{"*"},
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			IdleTimeout:       60 * time.Second,
			MaxConnsPerIP:     256,
		},
		Metrics: MetricsConfig{Listen: "127.0.0.1:7881"},
		SFU: SFUConfig{
			UDPPort:             7882,
			PacketCache:         2048,
			KeyframeInterval:    500 * time.Millisecond,
			NACKBudget:          262144,
			BandwidthEstimation: "simulcast",
			MaxLag:              500 * time.Millisecond,
		},
		Auth: AuthConfig{TokenTTL: 24 * time.Hour},
		Limits: LimitsConfig{
			MaxMessageBytes:        65536,
			JoinsPerIPPerMinute:    120,
			UnjoinedSocketsPerIP:   16,
			PendingSessionsPerIP:   20,
			PendingSessionsPerRoom: 500,
			MessagesPerSecond:      50,
			APIRequestsPerSecond:   10,
			RoomMessagesPerSecond:  20,
			RoomMessagesBurst:      40,
			TracksPerParticipant:   8,
			ParticipantsPerRoom:    10000,
			MaxSDPBytes:            65536,
			MaxMediaSections:       16,
		},
		Signaling: SignalingConfig{
			PingInterval:     10 * time.Second,
			ReadTimeout:      30 * time.Second,
			SendQueue:        256,
			WriteTimeout:     10 * time.Second,
			JoinTimeout:      10 * time.Second,
			TokenRefreshLead: time.Minute,
		},
		Room:      RoomConfig{EmptyTimeout: 10 * time.Second, RepublishGrace: 10 * time.Second},
		Redis:     RedisConfig{KeyPrefix: "halo:", Timeout: 500 * time.Millisecond},
		Cluster:   ClusterConfig{HeartbeatInterval: 2 * time.Second, NodeTTL: 6 * time.Second, RelayGrace: 10 * time.Second},
		Turn:      defaultTURN(),
		Webhooks:  defaultWebhooks(),
		HLS:       defaultHLS(),
		Recording: defaultRecording(),
		Shutdown:  ShutdownConfig{Timeout: 10 * time.Second},
		Log:       LogConfig{Level: "info", Format: "text"},
	}
}

// defaultNodeID is the host name made safe for node.id, or "node-" and a
// random suffix when there is no usable host name.
func defaultNodeID() string {
	host, err := os.Hostname()
	if err == nil {
		host = strings.Map(func(r rune) rune {
			if isIDChar(r) {
				return r
			}
			return '-'
		}, host)
		host = strings.Trim(host, "-.")
		if len(host) > maxIDLen {
			host = host[:maxIDLen]
		}
		if host != "" {
			return host
		}
	}
	return "node-" + randomHex(4)
}

// randomHex returns n random bytes, hex encoded.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+).
	return hex.EncodeToString(b)
}
