package config

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"strings"
	"time"
)

// TURNConfig configures the embedded TURN server (sfu/turn) and the TURN
// credentials the node hands to clients, for its own relay or for an
// external one (coturn) that shares turn.secret.
type TURNConfig struct {
	// Enabled runs the embedded TURN server. Default false.
	Enabled bool `mapstructure:"enabled"`
	// Port is the TURN port for UDP and TCP. Default 3478.
	Port int `mapstructure:"port"`
	// TLSPort is the TURN-over-TLS port (turns:). Default 5349; 443 is
	// best for strict networks when nothing else holds it; 0 turns TLS off.
	TLSPort int `mapstructure:"tls_port"`
	// CertFile and KeyFile are the PEM certificate chain and key for TLS.
	// A renewed file is read again at the next handshake after its
	// modification time changes: no restart. Required with a TLS port
	// unless ExternalTLS; in dev mode, without them, TLS is off.
	CertFile string `mapstructure:"cert_file"`
	// KeyFile is the PEM private key of CertFile.
	KeyFile string `mapstructure:"key_file"`
	// ExternalTLS says an L4 load balancer in front terminates TLS and
	// forwards plain TCP to TLSPort: the node listens there without TLS and
	// still announces turns: URLs. Default false.
	ExternalTLS bool `mapstructure:"external_tls"`
	// PublicTLSPort is the port announced in turns: URLs when it differs
	// from TLSPort (a load balancer on 443). Default 0: TLSPort.
	PublicTLSPort int `mapstructure:"public_tls_port"`
	// Domain is the host name (or IP) announced in turn: and turns: URLs;
	// the TLS certificate must name it. Default "": the host of
	// http.public_url, else the host the client reached.
	Domain string `mapstructure:"domain"`
	// RelayIP is the IP the relay sockets bind to and announce. Default "":
	// sfu.udp_address, else the node's first non-loopback media address.
	RelayIP string `mapstructure:"relay_ip"`
	// Secret is the shared secret of the TURN REST API / coturn
	// use-auth-secret scheme. Required when TURN is enabled or
	// external_urls is set, outside dev mode: at least 32 random
	// characters. In dev mode an empty one is derived from the generated
	// auth.secret.
	Secret string `mapstructure:"secret"`
	// CredentialTTL is how long a credential the node issues can open an
	// allocation. Default 1h; 1m..24h.
	CredentialTTL time.Duration `mapstructure:"credential_ttl"`
	// ExternalURLs are turn: or turns: URLs of an external TURN server
	// (coturn with use-auth-secret and static-auth-secret = turn.secret)
	// handed to clients with credentials. Default [].
	ExternalURLs []string `mapstructure:"external_urls"`
	// AllocationLifetime is the lifetime of an allocation between two
	// refreshes. Default 10m; 1m..1h.
	AllocationLifetime time.Duration `mapstructure:"allocation_lifetime"`
	// MaxAllocationsPerIdentity caps the live allocations of one identity
	// (a browser takes one per connection and transport). Default 16; 0
	// means unlimited.
	MaxAllocationsPerIdentity int `mapstructure:"max_allocations_per_identity"`
	// MaxAllocationsPerIP caps the live allocations from one client IP.
	// Default 128 (many users share a carrier-grade NAT); 0 means unlimited.
	MaxAllocationsPerIP int `mapstructure:"max_allocations_per_ip"`
	// MaxBitrate caps one allocation's relayed traffic, each direction, in
	// bits per second; packets beyond it are dropped and counted. Default
	// 10000000; 0 means unlimited.
	MaxBitrate int `mapstructure:"max_bitrate"`
}

// defaultTURN is turn's section of Default.
func defaultTURN() TURNConfig {
	return TURNConfig{
		Port: 3478, TLSPort: 5349, CredentialTTL: time.Hour, AllocationLifetime: 10 * time.Minute,
		MaxAllocationsPerIdentity: 16, MaxAllocationsPerIP: 128, MaxBitrate: 10_000_000,
	}
}

// errTURNSecret is the turn.secret problem outside dev mode. It never shows
// the secret.
const errTURNSecret = "turn.secret: must be set to a random value of at least 32 characters " +
	"when turn.enabled or turn.external_urls is set outside dev mode; an external coturn shares it " +
	"as its static-auth-secret (generate one with: openssl rand -hex 32)"

// IssuesTURN reports whether the node hands TURN credentials to clients:
// its own TURN server runs, or external TURN URLs are configured.
func (t TURNConfig) IssuesTURN() bool { return t.Enabled || len(t.ExternalURLs) > 0 }

// TURNSecret is the secret TURN credentials are made with: turn.secret,
// or in dev mode, when it is empty, one derived from the generated
// auth.secret (so every dev node has its own).
func (c *Config) TURNSecret() string {
	if c.Turn.Secret != "" || !c.Dev {
		return c.Turn.Secret
	}
	m := hmac.New(sha256.New, []byte(c.Auth.Secret))
	m.Write([]byte("halo turn secret"))
	return hex.EncodeToString(m.Sum(nil))
}

func (c *Config) validateTURN(p *problems) {
	t := c.Turn
	weak := len(t.Secret) < minSecretLen || strings.Contains(strings.ToLower(t.Secret), placeholderSecret)
	switch {
	case !c.Dev && t.IssuesTURN() && weak:
		*p = append(*p, errors.New(errTURNSecret))
	case !c.Dev && t.Secret != "" && weak:
		// Set but unused: refuse a weak one before it is turned on.
		*p = append(*p, errors.New(errTURNSecret))
	}
	p.port("turn.port", t.Port)
	p.port("turn.tls_port", t.TLSPort)
	p.port("turn.public_tls_port", t.PublicTLSPort)
	if t.Enabled && t.Port == 0 {
		p.add("turn.port", "0 is not a port clients can be told; name one such as 3478")
	}
	if t.Enabled && t.TLSPort != 0 && t.TLSPort == t.Port {
		p.add("turn.tls_port", "%d is also turn.port (TCP); give TLS its own port", t.TLSPort)
	}
	if t.Enabled && !c.Dev && t.TLSPort != 0 && !t.ExternalTLS && (t.CertFile == "" || t.KeyFile == "") {
		p.add("turn.cert_file", "turn.cert_file and turn.key_file are required for TLS on turn.tls_port %d "+
			"(or set turn.tls_port: 0, or turn.external_tls: true behind a TLS-terminating load balancer)", t.TLSPort)
	}
	if t.Domain != "" && (strings.ContainsAny(t.Domain, "/?#@ :[]") && net.ParseIP(t.Domain) == nil) {
		p.add("turn.domain", "%q is not a host name or IP address", t.Domain)
	}
	if t.RelayIP != "" {
		if ip := net.ParseIP(t.RelayIP); ip == nil || ip.IsUnspecified() {
			p.add("turn.relay_ip", "%q is not a specific IP address", t.RelayIP)
		}
	}
	if d := t.CredentialTTL; d < time.Minute || d > 24*time.Hour {
		p.add("turn.credential_ttl", "%s is not between 1m and 24h", formatDuration(d))
	}
	if d := t.AllocationLifetime; d < time.Minute || d > time.Hour {
		p.add("turn.allocation_lifetime", "%s is not between 1m and 1h", formatDuration(d))
	}
	p.between("turn.max_allocations_per_identity", t.MaxAllocationsPerIdentity, 0, 1<<20)
	p.between("turn.max_allocations_per_ip", t.MaxAllocationsPerIP, 0, 1<<20)
	p.between("turn.max_bitrate", t.MaxBitrate, 0, 10_000_000_000)
	for _, u := range t.ExternalURLs {
		scheme, rest, _ := strings.Cut(u, ":")
		if (scheme != "turn" && scheme != "turns") || rest == "" || strings.ContainsAny(u, " <>\"") {
			p.add("turn.external_urls", "%q is not a turn: or turns: URL such as turns:turn.example.com:443?transport=tcp", u)
		}
	}
}
