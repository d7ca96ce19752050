package testutil

import (
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/halobuzz/live/config"
)

// SFUConfig is the media engine's section for tests: config's defaults
// (config holds them all), media on 127.0.0.1 on a free port, loopback
// candidates when asked, and the smallest packet cache.
func SFUConfig(loopback bool) config.SFUConfig {
	c := config.Default().SFU
	c.UDPPort = 0
	c.UDPAddress = "127.0.0.1"
	c.IncludeLoopback = loopback
	c.PacketCache = 256
	return c
}

// NodeConfig is a whole node's configuration for tests: config's defaults,
// a random auth secret (production mode), signalling on a free loopback
// port, no metrics listener, media on 127.0.0.1 with loopback candidates,
// and empty rooms removed after 100 ms. Callers change what their test
// needs, then validate it.
func NodeConfig() *config.Config {
	c := config.Default()
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	c.Auth.Secret = hex.EncodeToString(secret)
	c.HTTP.Listen = "127.0.0.1:0"
	c.Metrics.Listen = ""
	c.SFU.UDPPort = 0
	c.SFU.UDPAddress = "127.0.0.1"
	c.SFU.IncludeLoopback = true
	c.Room.EmptyTimeout = 100 * time.Millisecond
	return c
}
