package hls

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// stats are a Server's counts, read by its metrics.
type stats struct {
	started   atomic.Uint64 // muxers started
	dropped   atomic.Uint64 // packets a muxer's ring had no room for
	muxErrors atomic.Uint64 // access units or packets the muxer refused
}

// RegisterMetrics registers the server's metrics on reg:
// halo_hls_muxers, halo_hls_muxers_started_total,
// halo_hls_dropped_packets_total, halo_hls_mux_errors_total and
// halo_hls_errors_total{code}.
func (s *Server) RegisterMetrics(reg prometheus.Registerer) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "halo_hls_muxers",
		Help: "Rooms whose LL-HLS muxer runs on this node."}, func() float64 { return float64(s.Sessions()) }))
	counter := func(name, help string, v *atomic.Uint64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v.Load()) }))
	}
	counter("halo_hls_muxers_started_total", "LL-HLS muxers started (first request for a room).", &s.stats.started)
	counter("halo_hls_dropped_packets_total", "RTP packets an LL-HLS muxer fell too far behind to take.", &s.stats.dropped)
	counter("halo_hls_mux_errors_total", "Access units or audio packets the LL-HLS muxer refused.", &s.stats.muxErrors)
	s.errs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "halo_hls_errors_total",
		Help: "/hls/ requests answered with an error, by code."}, []string{"code"})
	reg.MustRegister(s.errs)
}
