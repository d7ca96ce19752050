package sfu

import "github.com/prometheus/client_golang/prometheus"

// bweCollector exports the viewers' bandwidth estimates as a histogram of
// the current estimate of every viewer connection (built at each scrape),
// and the simulcast layer switches.
type bweCollector struct {
	engine   *Engine
	hist     *prometheus.Desc
	switches *prometheus.Desc
}

// bweBuckets are bits per second: from a 2G link to a fibre one.
var bweBuckets = []float64{100e3, 200e3, 300e3, 500e3, 750e3, 1e6, 1.5e6, 2e6, 3e6, 5e6, 10e6, 20e6}

func registerBWEMetrics(reg prometheus.Registerer, engine *Engine) {
	reg.MustRegister(&bweCollector{
		engine: engine,
		hist: prometheus.NewDesc("halo_viewer_bandwidth_bps",
			"Bandwidth estimates of the viewer connections now (bits/s; transport-cc feedback, Google congestion control).", nil, nil),
		switches: prometheus.NewDesc("halo_layer_switches_total",
			"Viewers moved to another simulcast layer at its keyframe (caps, bandwidth, layers that stopped).", nil, nil),
	})
}

// Describe implements prometheus.Collector.
func (c *bweCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.hist
	ch <- c.switches
}

// Collect implements prometheus.Collector.
func (c *bweCollector) Collect(ch chan<- prometheus.Metric) {
	counts := make(map[float64]uint64, len(bweBuckets))
	var sum float64
	est := c.engine.BandwidthEstimates()
	for _, bps := range est {
		sum += float64(bps)
		for _, b := range bweBuckets {
			if float64(bps) <= b {
				counts[b]++
			}
		}
	}
	ch <- prometheus.MustNewConstHistogram(c.hist, uint64(len(est)), sum, counts)
	ch <- prometheus.MustNewConstMetric(c.switches, prometheus.CounterValue, float64(c.engine.Stats().LayerSwitches))
}
