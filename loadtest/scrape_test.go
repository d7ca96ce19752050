package loadtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsServer serves reg the way the node's metrics listener does.
func metricsServer(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	return srv.URL + "/metrics"
}

func TestScrapeCounter_ReadsARealRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	fwd := prometheus.NewCounter(prometheus.CounterOpts{Name: "halo_forwarded_packets_total", Help: "RTP packets written to viewers."})
	// A look-alike whose name starts with the wanted one, a labelled
	// counter and a gauge, as on the node.
	bytesFwd := prometheus.NewCounter(prometheus.CounterOpts{Name: "halo_forwarded_packets_total_bytes", Help: "look-alike"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "halo_signaling_errors_total", Help: "Errors \"by\" code.\nSecond line."}, []string{"code"})
	tracks := prometheus.NewGauge(prometheus.GaugeOpts{Name: "halo_tracks", Help: "Tracks."})
	reg.MustRegister(fwd, bytesFwd, errs, tracks, prometheus.NewGoCollector())
	fwd.Add(123456789012) // printed as 1.23456789012e+11
	bytesFwd.Add(7)
	errs.WithLabelValues("unauthorized").Add(3)
	errs.WithLabelValues(`we"ird\code`).Add(4)
	tracks.Set(2)
	url := metricsServer(t, reg)

	for _, tc := range []struct {
		name string
		want float64
	}{
		{"halo_forwarded_packets_total", 123456789012},
		{"halo_signaling_errors_total", 7},
	} {
		got, err := ScrapeCounter(context.Background(), url, tc.name)
		if err != nil || got != tc.want {
			t.Errorf("ScrapeCounter(%s) = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	if got, err := ScrapeCounter(context.Background(), url, "halo_tracks"); err == nil || !strings.Contains(err.Error(), "gauge") {
		t.Errorf("ScrapeCounter(gauge) = %v, %v; want an error naming the type", got, err)
	}
	if got, err := ScrapeCounter(context.Background(), url, "halo_missing_total"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("ScrapeCounter(missing) = %v, %v; want not found", got, err)
	}
}

func TestScrapeCounter_RefusesWhatIsNotAnExposition(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"server error", http.StatusInternalServerError, "halo_forwarded_packets_total 5\n", "500"},
		{"not the text format", http.StatusOK, "<html>login</html>\n", "parsing error"},
		{"bad value", http.StatusOK, "# TYPE halo_forwarded_packets_total counter\nhalo_forwarded_packets_total five\n", "parsing error"},
		{"over 4 MiB", http.StatusOK, strings.Repeat("# padding\n", maxScrapeBytes/10+1), "more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			got, err := ScrapeCounter(context.Background(), srv.URL, "halo_forwarded_packets_total")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("scrapeCounter = %v, %v; want an error with %q", got, err, tc.want)
			}
		})
	}
}

// The server probe reads the node's go_goroutines gauge with its counters,
// and marks it unknown on an endpoint without one.
func TestServerProbe_ReadsGoroutines(t *testing.T) {
	reg := prometheus.NewRegistry()
	fwd := prometheus.NewCounter(prometheus.CounterOpts{Name: "halo_forwarded_packets_total", Help: "RTP packets written to viewers."})
	reg.MustRegister(fwd, prometheus.NewGoCollector())
	s, err := ServerProbe{MetricsURL: metricsServer(t, reg)}.sample(context.Background())
	if err != nil || s.goroutines < 1 || !s.hasFwd {
		t.Fatalf("sample = %+v, %v; want the goroutine gauge", s, err)
	}
	bare := prometheus.NewRegistry()
	bare.MustRegister(fwd)
	s, err = ServerProbe{MetricsURL: metricsServer(t, bare)}.sample(context.Background())
	if err != nil || s.goroutines != -1 {
		t.Fatalf("sample without go_goroutines = %+v, %v; want -1", s, err)
	}
	// Per viewer only from a baseline of a server that had served nobody.
	a := serverSample{goroutines: 30, hasFwd: true}
	aud := serverSample{goroutines: 830, hasFwd: true}
	if c := serverCost(a, aud, aud, 100); c.GoroutinesPerViewer == nil || *c.GoroutinesPerViewer != 8 {
		t.Fatalf("fresh server: %+v", c)
	}
	a.forwarded = 5
	if c := serverCost(a, aud, aud, 100); c.GoroutinesPerViewer != nil || c.GoroutinesAudience != 830 {
		t.Fatalf("server that ran before: %+v", c)
	}
}
