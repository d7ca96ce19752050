package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// WebhooksConfig configures the webhooks: HTTP POSTs that tell an app
// backend what happens in the rooms (signaling/webhook, docs/webhooks.md).
type WebhooksConfig struct {
	// URLs receive every event (an http or https URL each, at most 8).
	// Default []: no webhooks.
	URLs []string `mapstructure:"urls"`
	// Secret signs each delivery the Standard Webhooks way: "whsec_" and
	// the base64 of 24 to 64 random bytes. Required when urls is set, in
	// dev mode too (the receiver must know it). Default "".
	Secret string `mapstructure:"secret"`
	// Events is the filter: the event types delivered (WebhookEvents).
	// Default []: all of them.
	Events []string `mapstructure:"events"`
	// ViewerEvents delivers participant_joined and participant_left for
	// viewers too; publishers' are always delivered. Audiences are large.
	// Default false.
	ViewerEvents bool `mapstructure:"viewer_events"`
	// Timeout bounds one delivery attempt (connect, send, answer).
	// Default 5s; 100ms..1m.
	Timeout time.Duration `mapstructure:"timeout"`
	// MaxAge is how long an event is retried before it is dropped.
	// Default 24h; 1s..7d.
	MaxAge time.Duration `mapstructure:"max_age"`
	// RetryInitial is the back-off after the first failed attempt; each
	// next one doubles, up to RetryMax, with jitter. Default 1s; 10ms..1h.
	RetryInitial time.Duration `mapstructure:"retry_initial"`
	// RetryMax bounds the back-off between two attempts. Default 5m;
	// retry_initial..24h.
	RetryMax time.Duration `mapstructure:"retry_max"`
	// ViewerCountInterval is the shortest time between two viewer_count
	// events of a room (cluster-wide). Default 10s; 100ms..1h.
	ViewerCountInterval time.Duration `mapstructure:"viewer_count_interval"`
	// QueueSize bounds the events a node alone (no Redis) holds undelivered;
	// past it new events are dropped and counted. Default 10000; 1..1000000.
	QueueSize int `mapstructure:"queue_size"`
}

// WebhookEvents are the event types a webhook delivers, in the order
// docs/webhooks.md lists them.
var WebhookEvents = []string{
	"room_started", "room_finished",
	"broadcast_started", "broadcast_ended",
	"participant_joined", "participant_left",
	"track_published", "track_unpublished",
	"viewer_count",
	"participant_removed", "track_muted",
	"node_draining", "node_lost",
}

// WebhookSecretPrefix starts a webhooks.secret, as in Standard Webhooks.
const WebhookSecretPrefix = "whsec_"

// defaultWebhooks are the section's defaults (Default).
func defaultWebhooks() WebhooksConfig {
	return WebhooksConfig{
		Timeout: 5 * time.Second, MaxAge: 24 * time.Hour,
		RetryInitial: time.Second, RetryMax: 5 * time.Minute,
		ViewerCountInterval: 10 * time.Second, QueueSize: 10000,
	}
}

// errWebhookSecret is the webhooks.secret problem. It never shows the
// secret.
const errWebhookSecret = "webhooks.secret: must be \"whsec_\" followed by the base64 of 24 to 64 random bytes " +
	"when webhooks.urls is set (generate one with: echo whsec_$(openssl rand -base64 32)); " +
	"the receivers check each delivery's signature with it"

// WebhookKey returns the HMAC key of a webhooks.secret: the bytes after
// "whsec_", base64 decoded (standard alphabet, padded or not). It fails on
// anything else, or on fewer than 24 or more than 64 bytes.
func WebhookKey(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(secret, WebhookSecretPrefix)
	if !ok {
		return nil, errors.New("does not start with " + WebhookSecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(b64)
	}
	if err != nil {
		return nil, errors.New("is not base64 after " + WebhookSecretPrefix)
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("decodes to %d bytes, not 24 to 64", len(key))
	}
	return key, nil
}

// maxWebhookURLs bounds webhooks.urls: each event is sent to every URL.
const maxWebhookURLs = 8

func (c *Config) validateWebhooks(p *problems) {
	w := c.Webhooks
	if len(w.URLs) > maxWebhookURLs {
		p.add("webhooks.urls", "%d URLs; at most %d", len(w.URLs), maxWebhookURLs)
	}
	for _, u := range w.URLs {
		if !isHTTPURL(u, true) {
			p.add("webhooks.urls", "%q is not an absolute http(s) URL without credentials, query or fragment", u)
		}
	}
	if _, err := WebhookKey(w.Secret); (len(w.URLs) > 0 || w.Secret != "") && err != nil {
		*p = append(*p, errors.New(errWebhookSecret))
	}
	for _, e := range w.Events {
		known := false
		for _, k := range WebhookEvents {
			known = known || e == k
		}
		if !known {
			p.add("webhooks.events", "%q is not an event; the events are %s", e, strings.Join(WebhookEvents, ", "))
		}
	}
	between := func(key string, d, lo, hi time.Duration) {
		if d < lo || d > hi {
			p.add(key, "%s is not between %s and %s", formatDuration(d), formatDuration(lo), formatDuration(hi))
		}
	}
	between("webhooks.timeout", w.Timeout, 100*time.Millisecond, time.Minute)
	between("webhooks.max_age", w.MaxAge, time.Second, 7*24*time.Hour)
	between("webhooks.retry_initial", w.RetryInitial, 10*time.Millisecond, time.Hour)
	between("webhooks.retry_max", w.RetryMax, max(w.RetryInitial, 10*time.Millisecond), 24*time.Hour)
	between("webhooks.viewer_count_interval", w.ViewerCountInterval, 100*time.Millisecond, time.Hour)
	p.between("webhooks.queue_size", w.QueueSize, 1, 1_000_000)
}
