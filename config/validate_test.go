package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// validConfig is Default with a production secret: valid.
func validConfig() *Config {
	c := Default()
	c.Auth.Secret = testSecret
	c.Cluster.Secret = testClusterSecret
	return c
}

// testClusterSecret is a valid cluster.secret, distinct from testSecret.
const testClusterSecret = "cluster-0123456789abcdef0123456789abcdef"

func TestValidate_EachProblemNamesItsKey(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"empty node id", func(c *Config) { c.Node.ID = "" }, `node.id: "" must be 1 to 63 letters, digits, '.', '_' or '-'`},
		{"node id with space", func(c *Config) { c.Node.ID = "a b" }, `node.id: "a b" must be 1 to 63 letters, digits, '.', '_' or '-'`},
		{"region with colon", func(c *Config) { c.Node.Region = "eu:west" }, `node.region: "eu:west" must be 1 to 63 letters, digits, '.', '_' or '-'`},
		{"http listen without port", func(c *Config) { c.HTTP.Listen = "localhost" }, `http.listen: "localhost" is not a host:port listen address such as :7880`},
		{"http listen bad port", func(c *Config) { c.HTTP.Listen = ":99999" }, `http.listen: ":99999" does not have a port between 0 and 65535`},
		{"public url relative", func(c *Config) { c.HTTP.PublicURL = "live.example.com" }, `http.public_url: "live.example.com" is not an absolute http(s) URL such as https://live.example.com`},
		{"public url ftp", func(c *Config) { c.HTTP.PublicURL = "ftp://x" }, `http.public_url: "ftp://x" is not an absolute http(s) URL such as https://live.example.com`},
		{"no origins", func(c *Config) { c.HTTP.AllowedOrigins = nil }, `http.allowed_origins: must not be empty (use "*" to allow any origin)`},
		{"origin with path", func(c *Config) { c.HTTP.AllowedOrigins = []string{"https://a.com/app"} }, `http.allowed_origins: "https://a.com/app" is not "*" or an origin such as https://example.com`},
		{"trusted proxy not a cidr", func(c *Config) { c.HTTP.TrustedProxies = []string{"10.0.0.0/8", "proxy.internal"} }, `http.trusted_proxies: "proxy.internal" is not an IP address or CIDR block such as 10.0.0.0/8`},
		{"trusted proxy bad prefix", func(c *Config) { c.HTTP.TrustedProxies = []string{"10.0.0.0/33"} }, `http.trusted_proxies: "10.0.0.0/33" is not an IP address or CIDR block`},
		{"read timeout zero", func(c *Config) { c.HTTP.ReadTimeout = 0 }, `http.read_timeout: 0s is not a positive duration`},
		{"idle timeout negative", func(c *Config) { c.HTTP.IdleTimeout = -time.Second }, `http.idle_timeout: -1s is not a positive duration`},
		{"header timeout zero", func(c *Config) { c.HTTP.ReadHeaderTimeout = 0 }, `http.read_header_timeout: 0s is not a positive duration`},
		{"conns per ip negative", func(c *Config) { c.HTTP.MaxConnsPerIP = -1 }, `http.max_conns_per_ip: -1 is not between 0 and 1048576`},
		{"token refresh lead zero", func(c *Config) { c.Signaling.TokenRefreshLead = 0 }, `signaling.token_refresh_lead: 0s is not a positive duration`},
		{"unjoined sockets negative", func(c *Config) { c.Limits.UnjoinedSocketsPerIP = -1 }, `limits.unjoined_sockets_per_ip: -1 is not between 0 and 1048576`},
		{"pending per ip negative", func(c *Config) { c.Limits.PendingSessionsPerIP = -1 }, `limits.pending_sessions_per_ip: -1 is not between 0 and 1048576`},
		{"pending per room too big", func(c *Config) { c.Limits.PendingSessionsPerRoom = 1<<20 + 1 }, `limits.pending_sessions_per_room: 1048577 is not between 0 and 1048576`},
		{"metrics listen bad", func(c *Config) { c.Metrics.Listen = "9090" }, `metrics.listen: "9090" is not a host:port listen address such as :7880`},
		{"metrics on http address", func(c *Config) { c.Metrics.Listen = ":7880" }, `metrics.listen: ":7880" is also http.listen; give metrics its own address`},
		{"udp port too big", func(c *Config) { c.SFU.UDPPort = 70000 }, `sfu.udp_port: 70000 is not a port`},
		{"udp port negative", func(c *Config) { c.SFU.UDPPort = -1 }, `sfu.udp_port: -1 is not a port`},
		{"udp address not ip", func(c *Config) { c.SFU.UDPAddress = "eth0" }, `sfu.udp_address: "eth0" is not an IP address`},
		{"tcp port too big", func(c *Config) { c.SFU.TCPPort = 65536 }, `sfu.tcp_port: 65536 is not a port`},
		{"nat ip not ip", func(c *Config) { c.SFU.NAT1To1IPs = []string{"1.2.3.4", "example.com"} }, `sfu.nat_1to1_ips: "example.com" is not an IP address`},
		{"ice server http", func(c *Config) { c.SFU.ICEServers = []string{"http://stun.example.com"} }, `sfu.ice_servers: "http://stun.example.com" is not a stun:, stuns:, turn: or turns: URL`},
		{"ice server empty host", func(c *Config) { c.SFU.ICEServers = []string{"stun:"} }, `sfu.ice_servers: "stun:" is not a stun:, stuns:, turn: or turns: URL`},
		{"fanout too many", func(c *Config) { c.SFU.FanoutWorkers = 257 }, `sfu.fanout_workers: 257 is not between 0 and 256`},
		{"packet cache not power of two", func(c *Config) { c.SFU.PacketCache = 3000 }, `sfu.packet_cache: 3000 is not a power of two between 256 and 32768`},
		{"packet cache too small", func(c *Config) { c.SFU.PacketCache = 128 }, `sfu.packet_cache: 128 is not a power of two between 256 and 32768`},
		{"packet cache too big", func(c *Config) { c.SFU.PacketCache = 65536 }, `sfu.packet_cache: 65536 is not a power of two between 256 and 32768`},
		{"keyframe interval too long", func(c *Config) { c.SFU.KeyframeInterval = 11 * time.Second }, `sfu.keyframe_min_interval: 11s is not between 0 and 10s`},
		{"max lag too short", func(c *Config) { c.SFU.MaxLag = 10 * time.Millisecond }, `sfu.max_lag: 10ms is not between 50ms and 10s`},
		{"max lag too long", func(c *Config) { c.SFU.MaxLag = 11 * time.Second }, `sfu.max_lag: 11s is not between 50ms and 10s`},
		{"keyframe interval negative", func(c *Config) { c.SFU.KeyframeInterval = -time.Second }, `sfu.keyframe_min_interval: -1s is not between 0 and 10s`},
		{"secret empty", func(c *Config) { c.Auth.Secret = "" }, errSecret},
		{"secret short", func(c *Config) { c.Auth.Secret = strings.Repeat("x", 31) }, errSecret},
		{"secret placeholder", func(c *Config) { c.Auth.Secret = "change-me" }, errSecret},
		{"secret padded placeholder", func(c *Config) { c.Auth.Secret = "CHANGE-ME-" + testSecret }, errSecret},
		{"dev secret empty", func(c *Config) { c.Dev = true; c.Auth.Secret = "" }, `auth.secret: must not be empty (Load generates one in dev mode)`},
		{"token ttl zero", func(c *Config) { c.Auth.TokenTTL = 0 }, `auth.token_ttl: 0s is not a positive duration`},
		{"message bytes small", func(c *Config) { c.Limits.MaxMessageBytes = 100 }, `limits.max_message_bytes: 100 is not between 1024 and 1048576`},
		{"joins negative", func(c *Config) { c.Limits.JoinsPerIPPerMinute = -1 }, `limits.joins_per_ip_per_minute: -1 is not between 0 and 1048576`},
		{"messages zero", func(c *Config) { c.Limits.MessagesPerSecond = 0 }, `limits.messages_per_second: 0 is not between 1 and 1048576`},
		{"room messages negative", func(c *Config) { c.Limits.RoomMessagesPerSecond = -1 }, `limits.room_messages_per_second: -1 is not between 0 and 1048576`},
		{"room burst zero", func(c *Config) { c.Limits.RoomMessagesBurst = 0 }, `limits.room_messages_burst: 0 is not between 1 and 1048576`},
		{"tracks zero", func(c *Config) { c.Limits.TracksPerParticipant = 0 }, `limits.tracks_per_participant: 0 is not between 1 and 256`},
		{"participants zero", func(c *Config) { c.Limits.ParticipantsPerRoom = 0 }, `limits.participants_per_room: 0 is not between 1 and 10000000`},
		{"sdp bytes small", func(c *Config) { c.Limits.MaxSDPBytes = 10 }, `limits.max_sdp_bytes: 10 is not between 1024 and 4194304`},
		{"media sections zero", func(c *Config) { c.Limits.MaxMediaSections = 0 }, `limits.max_media_sections: 0 is not between 1 and 1024`},
		{"ping interval zero", func(c *Config) { c.Signaling.PingInterval = 0 }, `signaling.ping_interval: 0s is not a positive duration`},
		{"read timeout below ping", func(c *Config) { c.Signaling.ReadTimeout = 5 * time.Second }, `signaling.read_timeout: 5s must be longer than signaling.ping_interval (10s)`},
		{"send queue zero", func(c *Config) { c.Signaling.SendQueue = 0 }, `signaling.send_queue: 0 is not between 1 and 65536`},
		{"write timeout negative", func(c *Config) { c.Signaling.WriteTimeout = -time.Second }, `signaling.write_timeout: -1s is not a positive duration`},
		{"empty timeout negative", func(c *Config) { c.Room.EmptyTimeout = -time.Second }, `room.empty_timeout: -1s is negative`},
		{"redis addr without port", func(c *Config) { c.Redis.Addrs = []string{"redis"} }, `redis.addrs: "redis" is not a host:port address`},
		{"redis addr without host", func(c *Config) { c.Redis.Addrs = []string{":6379"} }, `redis.addrs: ":6379" is not a host:port address`},
		{"redis db negative", func(c *Config) { c.Redis.DB = -1 }, `redis.db: -1 is negative`},
		{"redis cluster db", func(c *Config) { c.Redis.Addrs = []string{"a:1", "b:2"}; c.Redis.DB = 3 }, `redis.db: 3 is not 0, the only database of a Redis Cluster (several redis.addrs)`},
		{"redis prefix with braces", func(c *Config) { c.Redis.KeyPrefix = "{halo}" }, `redis.key_prefix: "{halo}" must be at most 64 characters without braces or spaces`},
		{"redis sentinel without addrs", func(c *Config) { c.Redis.SentinelMaster = "mymaster" }, `redis.sentinel_master: "mymaster" needs the sentinels' addresses in redis.addrs`},
		{"redis timeout zero", func(c *Config) { c.Redis.Timeout = 0 }, `redis.timeout: 0s is not between 10ms and 10s`},
		{"redis timeout long", func(c *Config) { c.Redis.Timeout = time.Minute }, `redis.timeout: 1m is not between 10ms and 10s`},
		{"cluster secret missing with redis", func(c *Config) { c.Redis.Addrs = []string{"redis:6379"}; c.Cluster.Secret = "" }, errClusterSecret},
		{"cluster secret short with redis", func(c *Config) { c.Redis.Addrs = []string{"redis:6379"}; c.Cluster.Secret = "short" }, errClusterSecret},
		{"cluster secret placeholder with redis", func(c *Config) {
			c.Redis.Addrs = []string{"redis:6379"}
			c.Cluster.Secret = "change-me-change-me-change-me-change-me"
		}, errClusterSecret},
		{"cluster secret weak without redis", func(c *Config) { c.Cluster.Secret = "short" }, errClusterSecret},
		{"relay address without port", func(c *Config) { c.Cluster.RelayAddress = "10.0.0.1" }, `cluster.relay_address: "10.0.0.1" is not a host:port address`},
		{"heartbeat zero", func(c *Config) { c.Cluster.HeartbeatInterval = 0 }, `cluster.heartbeat_interval: 0s is not a positive duration`},
		{"node ttl too short", func(c *Config) { c.Cluster.NodeTTL = 3 * time.Second }, `cluster.node_ttl: 3s must be at least twice cluster.heartbeat_interval (2s)`},
		{"shutdown zero", func(c *Config) { c.Shutdown.Timeout = 0 }, `shutdown.timeout: 0s is not a positive duration`},
		{"log level", func(c *Config) { c.Log.Level = "verbose" }, `log.level: "verbose" is not one of debug, info, warn, error`},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, `log.format: "xml" is not one of text, json`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(c)
			errs := problemsOf(c.Validate())
			if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), tt.want) {
				t.Errorf("got %q, want one problem starting %q", errs, tt.want)
			}
		})
	}
}

func TestValidate_AcceptsTheEdgesOfEachRange(t *testing.T) {
	c := validConfig()
	c.Dev = true
	c.Auth.Secret = "dev" // any non-empty secret in dev mode
	c.HTTP.Listen = "127.0.0.1:0"
	c.HTTP.PublicURL = "https://live.example.com/base"
	c.HTTP.AllowedOrigins = []string{"https://a.example.com", "http://localhost:3000/", "*"}
	c.Metrics.Listen = ""
	c.SFU.UDPPort = 65535
	c.SFU.UDPAddress = "::1"
	c.SFU.TCPPort = 0
	c.SFU.NAT1To1IPs = []string{"203.0.113.1", "2001:db8::1"}
	c.SFU.ICEServers = []string{"stun:stun.example.com:3478", "turns:turn.example.com:443?transport=tcp"}
	c.SFU.FanoutWorkers = 256
	c.SFU.PacketCache = 32768
	c.SFU.KeyframeInterval = 0
	c.Limits.JoinsPerIPPerMinute = 0
	c.Room.EmptyTimeout = 0
	c.Redis.Addrs = []string{"[::1]:6379", "redis.example.com:6380"}
	c.Redis.KeyPrefix = ""
	c.Redis.SentinelMaster = "mymaster"
	c.Redis.Timeout = 10 * time.Millisecond
	c.Cluster.Secret = "" // dev mode: not required
	c.Cluster.RelayAddress = "[2001:db8::1]:7883"
	c.Cluster.NodeTTL = 2 * c.Cluster.HeartbeatInterval
	c.Log.Level, c.Log.Format = "debug", "json"
	if err := c.Validate(); err != nil {
		t.Errorf("valid edge values refused: %v", err)
	}
}

func TestValidate_ReportsEveryProblemAtOnce(t *testing.T) {
	c := validConfig()
	c.SFU.UDPPort = 70000
	c.Log.Level = "loud"
	c.Auth.Secret = ""
	errs := problemsOf(c.Validate())
	if len(errs) != 3 {
		t.Fatalf("got %d problems %q, want 3", len(errs), errs)
	}
}

// problemsOf unpacks an errors.Join result.
func problemsOf(err error) []error {
	if err == nil {
		return nil
	}
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		return joined.Unwrap()
	}
	return []error{err}
}
