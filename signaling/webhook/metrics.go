package webhook

import (
	"net/url"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the webhooks' Prometheus series.
type Metrics struct {
	deliveries *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	dropped    prometheus.Counter
	depth      atomic.Int64
}

// NewMetrics registers the webhooks' series on reg:
// halo_webhook_deliveries_total{endpoint,result} (result delivered,
// failed: one attempt, expired: given up at webhooks.max_age),
// halo_webhook_delivery_latency_seconds{endpoint} (from the event to its
// delivery, retries included), halo_webhook_queue_depth (events queued,
// not yet delivered: the node's own in memory, the cluster's in Redis) and
// halo_webhook_dropped_total (events lost before the queue: it was full or
// unreachable). endpoint is a URL's scheme and host, never its path.
//
// The series of each of urls exist from the start, at 0; without urls (a
// node without webhooks) they exist with an empty endpoint, so that the
// alert rules and dashboards read series every node exports.
func NewMetrics(reg prometheus.Registerer, urls []string) *Metrics {
	m := &Metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "halo_webhook_deliveries_total",
			Help: "Webhook delivery attempts by endpoint and result (delivered, failed, expired).",
		}, []string{"endpoint", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "halo_webhook_delivery_latency_seconds",
			Help:    "Time from an event to its delivery to an endpoint, retries included.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800},
		}, []string{"endpoint"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "halo_webhook_dropped_total",
			Help: "Webhook events dropped before they were queued (queue full or unreachable).",
		}),
	}
	depth := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "halo_webhook_queue_depth",
		Help: "Webhook events queued and not yet delivered (a cluster's: in Redis).",
	}, func() float64 { return float64(m.depth.Load()) })
	if reg != nil {
		reg.MustRegister(m.deliveries, m.latency, m.dropped, depth)
	}
	eps := []string{""}
	if len(urls) > 0 {
		eps = eps[:0]
		for _, u := range urls {
			eps = append(eps, endpoint(u))
		}
	}
	for _, e := range eps {
		for _, r := range []string{"delivered", "failed", "expired"} {
			m.deliveries.WithLabelValues(e, r)
		}
		m.latency.WithLabelValues(e)
	}
	return m
}

// endpoint is the label of a URL: its scheme and host.
func endpoint(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "invalid"
	}
	return p.Scheme + "://" + p.Host
}

func (m *Metrics) delivered(u, result string, latency time.Duration) {
	e := endpoint(u)
	m.deliveries.WithLabelValues(e, result).Inc()
	if result == "delivered" {
		m.latency.WithLabelValues(e).Observe(latency.Seconds())
	}
}
