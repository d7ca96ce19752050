package config

import (
	"strings"
	"testing"
	"time"
)

// hls.signing_secret never shows in the printed configuration, a weak one
// is refused outside dev mode without being shown, and durations out of
// range name their key.
func TestHLS_SecretMaskedAndChecked(t *testing.T) {
	signing := strings.Repeat("s1", 20)
	cfg := Default()
	cfg.Auth.Secret = testSecret
	cfg.HLS.SigningSecret = signing
	out, err := cfg.MaskedYAML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), signing) || !strings.Contains(string(out), "signing_secret: '******'") {
		t.Fatalf("hls.signing_secret not masked:\n%s", out)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("a good hls section refused: %v", err)
	}
	cfg.HLS.SigningSecret = "short-one"
	err = cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "hls.signing_secret") || strings.Contains(err.Error(), "short-one") {
		t.Fatalf("weak secret: %v", err)
	}
	cfg.HLS.SigningSecret = ""
	cfg.HLS.PartDuration = 3 * time.Second
	cfg.HLS.SegmentDuration = 200 * time.Millisecond
	cfg.HLS.StallTimeout = time.Second
	err = cfg.Validate()
	for _, key := range []string{"hls.part_duration", "hls.segment_duration", "hls.stall_timeout"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s out of range not named: %v", key, err)
		}
	}
}
