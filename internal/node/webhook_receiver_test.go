package node

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/signaling/webhook"
)

// testWebhookSecret is the webhooks.secret of the tests: "whsec_" and 32
// bytes in base64.
const testWebhookSecret = "whsec_dGVzdC13ZWJob29rLXNlY3JldC0zMi1ieXRlcy0hISE="

// receiver is an app backend's webhook endpoint on 127.0.0.1: it checks
// every delivery's signature as a receiver would (a bad one fails the test
// and is answered 401), and records the events in the order they arrived.
// It can go down (its port refuses connections) and come back on the
// same port.
type receiver struct {
	t      testing.TB
	signer *webhook.Signer
	addr   string

	mu     sync.Mutex
	events []webhook.Event
	bad    int
	srv    *http.Server
}

func startReceiver(t testing.TB) *receiver {
	t.Helper()
	s, err := webhook.NewSigner(testWebhookSecret)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{t: t, signer: s}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.serve(ln)
	t.Cleanup(r.down)
	return r
}

// URL is the endpoint's URL (webhooks.urls).
func (r *receiver) URL() string { return "http://" + r.addr + "/hooks" }

func (r *receiver) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(r.handle), ReadHeaderTimeout: 5 * time.Second}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

func (r *receiver) handle(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	if err := r.signer.Verify(req.Header, body, time.Now(), 5*time.Minute); err != nil {
		r.mu.Lock()
		r.bad++
		r.mu.Unlock()
		r.t.Errorf("webhook delivery with a bad signature: %v (headers %v)", err, req.Header)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var ev webhook.Event
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID != req.Header.Get(webhook.HeaderID) {
		r.t.Errorf("webhook body %s: %v, or its id is not the webhook-id %q", body, err, req.Header.Get(webhook.HeaderID))
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// down closes the endpoint: connections to its port are refused.
func (r *receiver) down() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
}

// up opens the endpoint again on the same port.
func (r *receiver) up() {
	r.t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port may be in TIME_WAIT for a moment
		if ln, err = net.Listen("tcp", r.addr); err == nil || !isAddrInUse(err) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		r.t.Fatalf("receiver back on %s: %v", r.addr, err)
	}
	r.serve(ln)
}

func isAddrInUse(err error) bool { return errors.Is(err, syscall.EADDRINUSE) }

// all returns the events received so far, in order of arrival.
func (r *receiver) all() []webhook.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]webhook.Event(nil), r.events...)
}

// ofRoom returns the events of room received so far, in order of arrival.
func (r *receiver) ofRoom(room string) []webhook.Event {
	var out []webhook.Event
	for _, e := range r.all() {
		if e.Room == room {
			out = append(out, e)
		}
	}
	return out
}

// has reports whether an event of type typ of room arrived.
func (r *receiver) has(room, typ string) bool {
	for _, e := range r.ofRoom(room) {
		if e.Type == typ {
			return true
		}
	}
	return false
}

// webhookConfig points cfg's webhooks at r, with the tests' secret and
// short intervals.
func webhookConfig(r *receiver) func(*config.Config) {
	return func(c *config.Config) {
		c.Webhooks.URLs = []string{r.URL()}
		c.Webhooks.Secret = testWebhookSecret
		c.Webhooks.ViewerCountInterval = 200 * time.Millisecond
	}
}
