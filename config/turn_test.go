package config

import (
	"strings"
	"testing"
	"time"
)

// testTURNSecret is a valid turn.secret.
const testTURNSecret = "turn-0123456789abcdef0123456789abcdef"

func TestValidateTURN_EachProblemNamesItsKey(t *testing.T) {
	on := func(c *Config) {
		c.Turn.Enabled = true
		c.Turn.Secret = testTURNSecret
		c.Turn.CertFile, c.Turn.KeyFile = "/etc/halo/turn.pem", "/etc/halo/turn.key"
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"enabled without secret", func(c *Config) { on(c); c.Turn.Secret = "" }, "turn.secret: must be set"},
		{"external urls with placeholder secret", func(c *Config) {
			c.Turn.ExternalURLs = []string{"turns:turn.example.com:443"}
			c.Turn.Secret = "change-me-change-me-change-me-change-me"
		}, "turn.secret: must be set"},
		{"short secret while off", func(c *Config) { c.Turn.Secret = "short" }, "turn.secret: must be set"},
		{"tls without certificate", func(c *Config) { on(c); c.Turn.CertFile = "" }, "turn.cert_file: turn.cert_file and turn.key_file are required"},
		{"tls port equals port", func(c *Config) { on(c); c.Turn.TLSPort = 3478 }, "turn.tls_port: 3478 is also turn.port"},
		{"port zero while enabled", func(c *Config) { on(c); c.Turn.Port = 0 }, "turn.port: 0 is not a port clients can be told"},
		{"port too big", func(c *Config) { c.Turn.Port = 70000 }, "turn.port: 70000 is not a port"},
		{"relay ip unspecified", func(c *Config) { c.Turn.RelayIP = "0.0.0.0" }, `turn.relay_ip: "0.0.0.0" is not a specific IP address`},
		{"domain with path", func(c *Config) { c.Turn.Domain = "turn.example.com/x" }, `turn.domain: "turn.example.com/x" is not a host name`},
		{"credential ttl too long", func(c *Config) { c.Turn.CredentialTTL = 48 * time.Hour }, "turn.credential_ttl: 48h is not between 1m and 24h"},
		{"allocation lifetime too long", func(c *Config) { c.Turn.AllocationLifetime = 2 * time.Hour }, "turn.allocation_lifetime: 2h is not between 1m and 1h"},
		{"per identity negative", func(c *Config) { c.Turn.MaxAllocationsPerIdentity = -1 }, "turn.max_allocations_per_identity: -1 is not between"},
		{"bitrate negative", func(c *Config) { c.Turn.MaxBitrate = -1 }, "turn.max_bitrate: -1 is not between"},
		{"external url http", func(c *Config) {
			c.Turn.Secret = testTURNSecret
			c.Turn.ExternalURLs = []string{"https://turn.example.com"}
		}, `turn.external_urls: "https://turn.example.com" is not a turn: or turns: URL`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.want)
			}
			if s := c.Turn.Secret; s != "" && strings.Contains(err.Error(), s) {
				t.Fatalf("the error shows the secret: %v", err)
			}
		})
	}
}

func TestValidateTURN_AcceptsAWorkingSetup(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"off, default": func(*Config) {},
		"tls with files": func(c *Config) {
			c.Turn.Enabled, c.Turn.Secret, c.Turn.CertFile, c.Turn.KeyFile = true, testTURNSecret, "a.pem", "a.key"
		},
		"load balancer": func(c *Config) {
			c.Turn.Enabled, c.Turn.Secret, c.Turn.ExternalTLS, c.Turn.PublicTLSPort = true, testTURNSecret, true, 443
		},
		"udp and tcp": func(c *Config) { c.Turn.Enabled, c.Turn.Secret, c.Turn.TLSPort = true, testTURNSecret, 0 },
		"external coturn": func(c *Config) {
			c.Turn.Secret, c.Turn.ExternalURLs = testTURNSecret, []string{"turn:turn.example.com:3478"}
		},
	} {
		c := validConfig()
		mutate(c)
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestTURNSecret_DevModeDerivesOneFromTheGeneratedAuthSecret(t *testing.T) {
	c := Default()
	c.Dev, c.Auth.Secret = true, randomHex(32)
	c.Turn.Enabled = true
	s := c.TURNSecret()
	if len(s) < minSecretLen || s == c.Auth.Secret {
		t.Fatalf("dev TURN secret %q: want a derived secret of at least %d characters, not auth.secret", s, minSecretLen)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("dev mode with turn.enabled and no turn.secret: %v", err)
	}
	c.Dev = false
	if c.TURNSecret() != "" {
		t.Fatal("outside dev mode, TURNSecret derived a secret")
	}
	c.Turn.Secret = testTURNSecret
	out, _ := c.MaskedYAML()
	if strings.Contains(string(out), testTURNSecret) {
		t.Fatalf("--print-config shows turn.secret:\n%s", out)
	}
}
