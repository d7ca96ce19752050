package sfu

import (
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// registerQualityMetrics adds what viewers live through: the histograms of
// their receiver reports (fed by the engine's quality observer, about once
// a second per viewer and track), ICE failures and freezes.
func registerQualityMetrics(reg prometheus.Registerer, engine *Engine) {
	loss := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "halo_viewer_loss_ratio",
		Help:    "Fraction of packets lost, per viewer receiver report (RTCP RR; one observation per viewer, track and report, about 1/s), by media kind.",
		Buckets: []float64{0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1},
	}, []string{"kind"})
	rtt := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "halo_viewer_rtt_seconds",
		Help:    "Round-trip time between this node and its viewers, from their receiver reports, by media kind.",
		Buckets: []float64{.005, .01, .025, .05, .1, .15, .2, .3, .5, 1, 2},
	}, []string{"kind"})
	jitter := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "halo_viewer_jitter_seconds",
		Help:    "Interarrival jitter viewers report, by media kind.",
		Buckets: []float64{.001, .0025, .005, .01, .02, .03, .05, .1, .2, .5},
	}, []string{"kind"})
	reg.MustRegister(loss, rtt, jitter)
	// The children are made once: the observer runs per report and must
	// not look labels up each time.
	type kindSeries struct{ loss, rtt, jitter prometheus.Observer }
	var byKind [3]kindSeries
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		byKind[k] = kindSeries{loss.WithLabelValues(k.String()), rtt.WithLabelValues(k.String()), jitter.WithLabelValues(k.String())}
	}
	engine.SetQualityObserver(func(r ViewerReport) {
		if int(r.Kind) >= len(byKind) || byKind[r.Kind].loss == nil {
			return
		}
		s := byKind[r.Kind]
		s.loss.Observe(r.Loss)
		s.jitter.Observe(r.Jitter.Seconds())
		if r.RTT > 0 {
			s.rtt.Observe(r.RTT.Seconds())
		}
	})
	reg.MustRegister(&qualityCollector{engine: engine,
		ice: prometheus.NewDesc("halo_ice_failures_total",
			"Connections whose ICE failed, by role (publisher, viewer, relay) and stage (setup: never connected; established: connected, then went silent).",
			[]string{"role", "stage"}, nil),
		freezes: prometheus.NewDesc("halo_viewer_freezes_total",
			"Viewers who were watching a video track and were sent no packet of it for 1 s, counted once per freeze, by cause (source: the track itself got nothing; delivery: the track was fed but the viewer was not sent it).",
			[]string{"cause"}, nil),
	})
}

// qualityCollector reports the engine's ICE failure and freeze counters.
type qualityCollector struct {
	engine       *Engine
	ice, freezes *prometheus.Desc
}

// Describe implements prometheus.Collector.
func (c *qualityCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.ice
	ch <- c.freezes
}

// Collect implements prometheus.Collector.
func (c *qualityCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.engine.QualityStats()
	roles := [...]string{ICERolePublisher: "publisher", ICERoleViewer: "viewer", ICERoleRelay: "relay"}
	stages := [...]string{ICEStageSetup: "setup", ICEStageEstablished: "established"}
	for r, name := range roles {
		for st, stage := range stages {
			ch <- prometheus.MustNewConstMetric(c.ice, prometheus.CounterValue, float64(s.ICEFailures[r][st]), name, stage)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.freezes, prometheus.CounterValue, float64(s.Freezes[FreezeSource]), "source")
	ch <- prometheus.MustNewConstMetric(c.freezes, prometheus.CounterValue, float64(s.Freezes[FreezeDelivery]), "delivery")
}
