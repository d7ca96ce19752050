package config

import (
	"errors"
	"net/url"
	"strings"
	"time"
)

// RecordingConfig configures recordings (package record): a room's LL-HLS
// init segments and segments, with a VOD playlist, uploaded to an
// S3-compatible store, started through the server API or for rooms whose
// token carries the record grant (docs/operations.md, Recordings).
type RecordingConfig struct {
	// Enabled lets rooms be recorded. Default false. Needs hls.enabled and
	// recording.s3.endpoint and bucket.
	Enabled bool `mapstructure:"enabled"`
	// S3 is the store.
	S3 RecordingS3Config `mapstructure:"s3"`
	// Prefix starts every object's key: {prefix}{room}/{recording id}/...
	// Default "recordings/".
	Prefix string `mapstructure:"prefix"`
	// Retention is written on every object as the tag and metadata
	// "retention" (for example "30d"), for the store's lifecycle rules.
	// Default "": none.
	Retention string `mapstructure:"retention"`
	// SpoolDir holds what is not uploaded yet. Default: a halo-recording
	// directory in the system's temporary directory.
	SpoolDir string `mapstructure:"spool_dir"`
	// SpoolMaxBytes bounds the spool; past it the oldest segment not
	// uploaded is dropped and counted. Default 1 GiB; 1 MiB..1 TiB.
	SpoolMaxBytes int `mapstructure:"spool_max_bytes"`
	// RetryMax bounds the back-off between two upload attempts. Default
	// 5s; 100ms..5m.
	RetryMax time.Duration `mapstructure:"retry_max"`
}

// RecordingS3Config is the S3-compatible store of recordings.
type RecordingS3Config struct {
	// Endpoint is the store's URL: http://host:port or https://host.
	Endpoint string `mapstructure:"endpoint"`
	// Bucket holds the recordings; it must exist.
	Bucket string `mapstructure:"bucket"`
	// Region is the bucket's region. Default "us-east-1".
	Region string `mapstructure:"region"`
	// AccessKey and SecretKey sign the requests (a secret: never shown).
	AccessKey string `mapstructure:"access_key"`
	SecretKey string `mapstructure:"secret_key"`
	// PathStyle addresses the bucket as endpoint/bucket/key (MinIO,
	// SeaweedFS, Ceph) instead of bucket.endpoint/key. Default true.
	PathStyle bool `mapstructure:"path_style"`
}

// defaultRecording is recording's section of Default.
func defaultRecording() RecordingConfig {
	return RecordingConfig{
		Prefix: "recordings/", SpoolMaxBytes: 1 << 30, RetryMax: 5 * time.Second,
		S3: RecordingS3Config{Region: "us-east-1", PathStyle: true},
	}
}

func init() {
	// A secret: never shown by MaskedYAML (print.go).
	secretKeys["recording.s3.secret_key"] = true
}

func (c *Config) validateRecording(p *problems) {
	r := c.Recording
	if r.SpoolMaxBytes < 1<<20 || r.SpoolMaxBytes > 1<<40 {
		p.add("recording.spool_max_bytes", "%d is not between 1 MiB (1048576) and 1 TiB", r.SpoolMaxBytes)
	}
	if d := r.RetryMax; d < 100*time.Millisecond || d > 5*time.Minute {
		p.add("recording.retry_max", "%s is not between 100ms and 5m", formatDuration(d))
	}
	if len(r.Retention) > 64 || strings.ContainsAny(r.Retention, " &=+/?#") {
		p.add("recording.retention", "%q must be at most 64 characters, without spaces or & = + / ? #", r.Retention)
	}
	if !r.Enabled {
		return
	}
	if !c.HLS.Enabled {
		p.add("recording.enabled", "needs hls.enabled (a recording is the room's LL-HLS segments)")
	}
	s := r.S3
	if u, err := url.Parse(s.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		p.add("recording.s3.endpoint", "%q is not an http:// or https:// URL of a host (no path)", s.Endpoint)
	}
	if n := len(s.Bucket); n < 3 || n > 63 || strings.ContainsAny(s.Bucket, "/ _") || strings.ToLower(s.Bucket) != s.Bucket {
		p.add("recording.s3.bucket", "%q is not a bucket name (3..63 lower-case letters, digits, '-' and '.')", s.Bucket)
	}
	if s.AccessKey == "" || s.SecretKey == "" {
		*p = append(*p, errors.New("recording.s3.access_key and recording.s3.secret_key: both are required when recording.enabled"))
	} else if !c.Dev && strings.Contains(strings.ToLower(s.SecretKey), placeholderSecret) {
		// Never shows the secret.
		*p = append(*p, errors.New("recording.s3.secret_key: is the example's placeholder; use the store's key"))
	}
}
