package node

import (
	"github.com/halobuzz/live/internal/version"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// newRegistry is the registry the metrics listener serves, and the
// Registerer each layer registers its own metrics on. Every series carries
// the constant labels node and region, so the series of all nodes of a
// cluster can be told apart and summed per region whatever the scrape
// configuration. The process's own series (Go runtime, process, build) are
// the node's.
func newRegistry(node, region string) (*prometheus.Registry, prometheus.Registerer) {
	reg := prometheus.NewRegistry()
	labelled := prometheus.WrapRegistererWith(prometheus.Labels{"node": node, "region": region}, reg)
	labelled.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	bi := version.Get()
	labelled.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "halo_build_info",
		Help:        "Always 1; its labels name the running build (halo-sfu --version).",
		ConstLabels: prometheus.Labels{"version": bi.Version, "commit": bi.Commit, "go": bi.Go}},
		func() float64 { return 1 }))
	return reg, labelled
}
