package config

import (
	"errors"
	"strings"
	"time"
)

// HLSConfig configures the LL-HLS output (package hls): each room's
// broadcast muxed into CMAF segments and parts at /hls/{room}/index.m3u8,
// started by the first request and stopped when unwatched. Video passes
// through untouched, so only codecs HLS carries are served (H.264, H.265, VP9, AV1).
type HLSConfig struct {
	// Enabled serves /hls/. Default true: nothing runs until a player asks.
	Enabled bool `mapstructure:"enabled"`
	// PartDuration is the least duration of a partial segment. Default
	// 200ms; 100ms..2s.
	PartDuration time.Duration `mapstructure:"part_duration"`
	// SegmentDuration is the least duration of a segment; a segment also
	// waits for the next keyframe. Default 1s; 500ms..10s, and at least
	// part_duration.
	SegmentDuration time.Duration `mapstructure:"segment_duration"`
	// SegmentCount is how many segments a playlist lists. Default 7; 3..60.
	SegmentCount int `mapstructure:"segment_count"`
	// IdleTimeout stops a room's muxer when no request came for this long.
	// Default 30s; 5s..1h.
	IdleTimeout time.Duration `mapstructure:"idle_timeout"`
	// StallTimeout stops a room's muxer when its broadcast sent nothing for
	// this long (a stalled encoder, a lost broadcaster who does not come
	// back), answering the playlist requests it held. Default 30s; 5s..10m;
	// keep it above room.republish_grace so a reconnect keeps the muxer.
	StallTimeout time.Duration `mapstructure:"stall_timeout"`
	// SigningSecret, when set, makes every /hls/ request carry
	// ?exp=<unix seconds>&sig=<hex HMAC-SHA256 of "/hls/{room}/" followed
	// by exp> (docs/operations.md, LL-HLS). Outside dev mode at least 32
	// characters. Default "": unsigned.
	SigningSecret string `mapstructure:"signing_secret"`
}

// defaultHLS is hls's section of Default.
func defaultHLS() HLSConfig {
	return HLSConfig{
		Enabled: true, PartDuration: 200 * time.Millisecond, SegmentDuration: time.Second,
		SegmentCount: 7, IdleTimeout: 30 * time.Second, StallTimeout: 30 * time.Second,
	}
}

// errHLSSecret is the hls.signing_secret problem outside dev mode. It never
// shows the secret.
const errHLSSecret = "hls.signing_secret: is set, but shorter than 32 characters or a placeholder; " +
	"use a random value (for example: openssl rand -hex 32), or leave it empty for unsigned URLs"

func init() {
	// A secret: never shown by MaskedYAML (print.go).
	secretKeys["hls.signing_secret"] = true
}

func (c *Config) validateHLS(p *problems) {
	h := c.HLS
	if h.SigningSecret != "" && !c.Dev &&
		(len(h.SigningSecret) < minSecretLen || strings.Contains(strings.ToLower(h.SigningSecret), placeholderSecret)) {
		*p = append(*p, errors.New(errHLSSecret))
	}
	if d := h.PartDuration; d < 100*time.Millisecond || d > 2*time.Second {
		p.add("hls.part_duration", "%s is not between 100ms and 2s", formatDuration(d))
	}
	if d := h.SegmentDuration; d < 500*time.Millisecond || d > 10*time.Second {
		p.add("hls.segment_duration", "%s is not between 500ms and 10s", formatDuration(d))
	} else if d < h.PartDuration {
		p.add("hls.segment_duration", "%s is shorter than hls.part_duration (%s)", formatDuration(d), formatDuration(h.PartDuration))
	}
	p.between("hls.segment_count", h.SegmentCount, 3, 60)
	if d := h.IdleTimeout; d < 5*time.Second || d > time.Hour {
		p.add("hls.idle_timeout", "%s is not between 5s and 1h", formatDuration(d))
	}
	if d := h.StallTimeout; d < 5*time.Second || d > 10*time.Minute {
		p.add("hls.stall_timeout", "%s is not between 5s and 10m", formatDuration(d))
	}
}
