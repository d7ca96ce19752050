package config

import (
	"strings"
	"testing"
)

// recording.s3.secret_key never shows in the printed configuration; an
// enabled recording needs a usable endpoint, bucket, both keys and
// hls.enabled, each problem naming its key without showing the secret.
func TestRecording_SecretMaskedAndChecked(t *testing.T) {
	secret := strings.Repeat("k3", 20)
	cfg := Default()
	cfg.Auth.Secret = testSecret
	cfg.Recording.Enabled = true
	cfg.Recording.S3 = RecordingS3Config{Endpoint: "http://127.0.0.1:9000", Bucket: "halo-rec", Region: "us-east-1",
		AccessKey: "halo", SecretKey: secret, PathStyle: true}
	out, err := cfg.MaskedYAML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), secret) || !strings.Contains(string(out), "secret_key: '******'") {
		t.Fatalf("recording.s3.secret_key not masked:\n%s", out)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("a good recording section refused: %v", err)
	}
	cfg.Recording.S3.Endpoint = "ftp://x/y"
	cfg.Recording.S3.Bucket = "Bad_Bucket"
	cfg.Recording.S3.AccessKey = ""
	cfg.Recording.SpoolMaxBytes = 10
	cfg.Recording.Retention = "30 days"
	cfg.HLS.Enabled = false
	err = cfg.Validate()
	for _, key := range []string{"recording.s3.endpoint", "recording.s3.bucket", "recording.s3.access_key", "recording.spool_max_bytes",
		"recording.retention", "recording.enabled"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s not named: %v", key, err)
		}
	}
	if err != nil && strings.Contains(err.Error(), secret) {
		t.Errorf("the secret is shown: %v", err)
	}
	cfg = Default()
	cfg.Auth.Secret = testSecret
	cfg.Recording.S3.Endpoint = "not checked while disabled"
	if err := cfg.Validate(); err != nil {
		t.Errorf("a disabled recording section refused: %v", err)
	}
}
