package testutil

import "github.com/halobuzz/live/config"

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
