package config

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testWebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // the Standard Webhooks test vector's

func TestWebhooks_Validate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(w *WebhooksConfig)
		want   string // "" valid; else a substring of the error
	}{
		{"defaults, no webhooks", func(*WebhooksConfig) {}, ""},
		{"a URL and a secret", func(w *WebhooksConfig) { w.URLs, w.Secret = []string{"https://app.example/hooks"}, testWebhookSecret }, ""},
		{"a URL without secret", func(w *WebhooksConfig) { w.URLs = []string{"https://app.example/hooks"} }, "webhooks.secret: must be"},
		{"secret without prefix", func(w *WebhooksConfig) {
			w.URLs, w.Secret = []string{"https://a.example/"}, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		}, "webhooks.secret"},
		{"secret too short", func(w *WebhooksConfig) { w.URLs, w.Secret = []string{"https://a.example/"}, "whsec_c2hvcnQ=" }, "webhooks.secret"},
		{"secret not base64", func(w *WebhooksConfig) { w.URLs, w.Secret = []string{"https://a.example/"}, "whsec_!!!!" }, "webhooks.secret"},
		{"not an http URL", func(w *WebhooksConfig) { w.URLs, w.Secret = []string{"ftp://a.example/"}, testWebhookSecret }, "webhooks.urls"},
		{"URL with credentials", func(w *WebhooksConfig) { w.URLs, w.Secret = []string{"https://u:p@a.example/"}, testWebhookSecret }, "webhooks.urls"},
		{"too many URLs", func(w *WebhooksConfig) {
			w.Secret = testWebhookSecret
			for range 9 {
				w.URLs = append(w.URLs, "https://a.example/")
			}
		}, "at most 8"},
		{"unknown event", func(w *WebhooksConfig) { w.Events = []string{"room_started", "room_exploded"} }, `"room_exploded" is not an event`},
		{"timeout too short", func(w *WebhooksConfig) { w.Timeout = time.Millisecond }, "webhooks.timeout"},
		{"retry_max below retry_initial", func(w *WebhooksConfig) { w.RetryInitial, w.RetryMax = time.Minute, time.Second }, "webhooks.retry_max"},
		{"viewer_count_interval zero", func(w *WebhooksConfig) { w.ViewerCountInterval = 0 }, "webhooks.viewer_count_interval"},
		{"queue_size zero", func(w *WebhooksConfig) { w.QueueSize = 0 }, "webhooks.queue_size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.Auth.Secret = strings.Repeat("k", 40)
			tc.change(&c.Webhooks)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate: %v; want an error with %q", err, tc.want)
			}
			if err != nil && c.Webhooks.Secret != "" && strings.Contains(err.Error(), strings.TrimPrefix(c.Webhooks.Secret, "whsec_")) {
				t.Fatalf("the error shows the secret: %v", err)
			}
		})
	}
}

func TestWebhooks_SecretIsMasked(t *testing.T) {
	c := Default()
	c.Webhooks.Secret = testWebhookSecret
	out, err := c.MaskedYAML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "MfKQ9r8G") || !strings.Contains(string(out), "secret: '******'") && !strings.Contains(string(out), `secret: "******"`) {
		t.Fatalf("webhooks.secret not masked:\n%s", out)
	}
}

// FuzzWebhooksConfig feeds arbitrary webhooks sections to Load. It must
// never panic; what it accepts has a usable secret (when there are URLs)
// and only known events.
func FuzzWebhooksConfig(f *testing.F) {
	for _, seed := range []string{
		"webhooks:\n  urls: [https://app.example/hooks]\n  secret: " + testWebhookSecret + "\n",
		"webhooks:\n  urls: https://a.example/,http://b.example:8080/x\n  secret: whsec_\n",
		"webhooks:\n  urls: [https://a.example/]\n  secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw==\n  events: [room_started, node_lost]\n",
		"webhooks:\n  events: [room_started, '']\n",
		"webhooks:\n  timeout: 1h\n  max_age: -1s\n  retry_initial: 0\n  retry_max: 1ns\n",
		"webhooks:\n  viewer_events: yes\n  queue_size: 99999999999999999999\n",
		"webhooks: [1, 2]\n",
		"webhooks:\n  urls: [{a: b}]\n",
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "fuzz.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := load([]string{"--config", path}, withSecret(), io.Discard)
		if err != nil {
			return
		}
		w := cfg.Webhooks
		if _, err := WebhookKey(w.Secret); len(w.URLs) > 0 && err != nil {
			t.Fatalf("accepted urls %q with an unusable secret: %v", w.URLs, err)
		}
		for _, e := range w.Events {
			if !strings.Contains(" "+strings.Join(WebhookEvents, " ")+" ", " "+e+" ") {
				t.Fatalf("accepted unknown event %q", e)
			}
		}
		if w.RetryMax < w.RetryInitial || w.ViewerCountInterval <= 0 || w.QueueSize < 1 {
			t.Fatalf("accepted %+v", w)
		}
	})
}
