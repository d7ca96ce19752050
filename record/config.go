package record

import (
	"os"
	"path/filepath"
	"time"

	"github.com/halobuzz/live/config"
)

// Config is what a Manager needs: the recording section and the hls
// section's signing secret (the recorder reads the muxer as a player).
type Config struct {
	Endpoint, Bucket, Region string
	AccessKey, SecretKey     string
	PathStyle                bool
	Prefix, Retention        string
	SpoolDir                 string
	SpoolMaxBytes            int64
	RetryMax                 time.Duration
	HLSSigningSecret         string
	// PollEvery is how often a recording reads the muxer's playlists.
	// Default 250ms.
	PollEvery time.Duration
}

// ConfigOf is the part of the configuration a Manager reads.
func ConfigOf(c *config.Config) Config {
	r := c.Recording
	dir := r.SpoolDir
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "halo-recording")
	}
	return Config{
		Endpoint: r.S3.Endpoint, Bucket: r.S3.Bucket, Region: r.S3.Region, AccessKey: r.S3.AccessKey, SecretKey: r.S3.SecretKey,
		PathStyle: r.S3.PathStyle, Prefix: r.Prefix, Retention: r.Retention, SpoolDir: dir, SpoolMaxBytes: int64(r.SpoolMaxBytes),
		RetryMax: r.RetryMax, HLSSigningSecret: c.HLS.SigningSecret,
	}
}
