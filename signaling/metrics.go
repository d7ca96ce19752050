package signaling

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the signalling layer's own Prometheus metrics: errors sent
// to clients by wire code, join latency, open WebSockets and slow clients
// dropped. The media plane and the rooms register theirs themselves
// (sfu.Engine.RegisterMetrics, room.Manager.RegisterMetrics).
type Metrics struct {
	errors      *prometheus.CounterVec
	joinLatency prometheus.Histogram
	connections prometheus.Gauge
	slowClients prometheus.Counter
}

// NewMetrics registers the signalling metrics on reg (nil: they are kept
// but not exported, as in a test that reads them directly).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "halo_signaling_errors_total", Help: "Errors sent to clients, by wire code.",
		}, []string{"code"}),
		joinLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "halo_join_duration_seconds", Help: "Time from a join request to the joined reply.",
			// Up to 10 s: the alert on p95 > 1 s needs buckets above 1 s
			// (a quantile in the +Inf bucket reads as the last finite bound).
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "halo_websocket_connections", Help: "Open signalling WebSocket connections.",
		}),
		slowClients: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "halo_slow_clients_dropped_total", Help: "Clients disconnected because their send queue was full.",
		}),
	}
	// The server-side failures of a join exist from the start at 0, so
	// that the availability rules (deploy/prometheus/alerts.yml) have a
	// series to divide before the first failure.
	for _, code := range []string{CodeInternal, CodeClusterUnavailable, CodeMediaFailed} {
		m.errors.WithLabelValues(code)
	}
	if reg != nil {
		reg.MustRegister(m.errors, m.joinLatency, m.connections, m.slowClients)
	}
	return m
}
