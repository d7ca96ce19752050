package webhook

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// testWorker delivers q to urls with fast retries.
func testWorker(t *testing.T, q Queue, maxAge time.Duration, urls ...string) (*worker, *Metrics) {
	t.Helper()
	s, err := NewSigner(vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(prometheus.NewRegistry(), urls)
	w := &worker{q: q, urls: urls, signer: s, metrics: m, log: slog.New(slog.DiscardHandler),
		client: &http.Client{Timeout: time.Second},
		policy: retryPolicy{initial: 20 * time.Millisecond, max: 100 * time.Millisecond, maxAge: maxAge},
		in:     make(chan []Delivery), results: make(chan result, maxInFlight), held: make(chan struct{}, maxHeld)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return w, m
}

func event(room string, n int) []byte {
	return encode(Event{ID: room + "-" + string(rune('0'+n)), Type: ViewerCount, Time: time.Now(), Room: room, Viewers: &n})
}

// TestWorker_RetriesInOrderPerRoomWithoutHoldingOthers: an endpoint that
// refuses room a's first attempts gets a's events in order after the
// retries, while room b's arrive meanwhile; every delivery is signed.
func TestWorker_RetriesInOrderPerRoomWithoutHoldingOthers(t *testing.T) {
	s, _ := NewSigner(vectorSecret)
	var mu sync.Mutex
	var got []string
	refusals := 3
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := s.Verify(r.Header, body, time.Now(), time.Minute); err != nil {
			t.Errorf("bad signature: %v", err)
		}
		var ev Event
		_ = json.Unmarshal(body, &ev)
		mu.Lock()
		defer mu.Unlock()
		if ev.Room == "a" && refusals > 0 {
			refusals--
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		got = append(got, ev.ID)
	}))
	defer srv.Close()
	q := NewMemoryQueue(100)
	_, m := testWorker(t, q, time.Minute, srv.URL)
	ctx := context.Background()
	_ = q.Append(ctx, Op{Room: "a", Event: event("a", 1)}, Op{Room: "a", Event: event("a", 2)}, Op{Room: "b", Event: event("b", 1)}, Op{Room: "a", Event: event("a", 3)})
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	var a []string
	for _, id := range got {
		if id[0] == 'a' {
			a = append(a, id)
		}
	}
	if len(got) != 4 || got[0] != "b-1" || len(a) != 3 || a[0] != "a-1" || a[1] != "a-2" || a[2] != "a-3" {
		t.Fatalf("delivered %q; want b-1 first (a was refused), then a-1, a-2, a-3", got)
	}
	if f := count(m, srv.URL, "failed"); f != 3 {
		t.Errorf("failed attempts counted %v, want 3", f)
	}
}

// TestWorker_GivesUpAtMaxAge: an endpoint that never answers 2xx: the
// event is dropped after webhooks.max_age, counted expired, and the queue
// is empty.
func TestWorker_GivesUpAtMaxAge(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	defer srv.Close()
	q := NewMemoryQueue(100)
	_, m := testWorker(t, q, 300*time.Millisecond, srv.URL)
	_ = q.Append(context.Background(), Op{Room: "a", Event: event("a", 1)})
	deadline := time.Now().Add(30 * time.Second)
	for count(m, srv.URL, "expired") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("not expired")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n, _ := q.Depth(context.Background()); n != 0 {
		t.Fatalf("depth %d after expiry", n)
	}
}

func TestRetryPolicy_BackoffDoublesWithJitterUpToMax(t *testing.T) {
	p := retryPolicy{initial: time.Second, max: 8 * time.Second}
	for n, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
		for range 100 {
			if d := p.backoff(n + 1); d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", n+1, d, want/2, want)
			}
		}
	}
}

// count reads halo_webhook_deliveries_total for url and result.
func count(m *Metrics, url, result string) float64 {
	var d dto.Metric
	_ = m.deliveries.WithLabelValues(endpoint(url), result).Write(&d)
	return d.GetCounter().GetValue()
}
