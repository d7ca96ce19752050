package sfu

import (
	"github.com/prometheus/client_golang/prometheus"
)

// RegisterMetrics registers the media plane's metrics on reg: packets and
// bytes forwarded, NACKs and PLIs, tracks and down-tracks, relays, what
// viewers report (loss, jitter, RTT, bandwidth estimates), ICE failures and
// freezes. Counters are read from the engine's own atomics at scrape time,
// so the packet path never touches a Prometheus type.
func (e *Engine) RegisterMetrics(reg prometheus.Registerer) {
	registerBWEMetrics(reg, e)
	counter := func(name, help string, f func(Stats) uint64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(f(e.Stats())) }))
	}
	gauge := func(name, help string, f func(Stats) int64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return float64(f(e.Stats())) }))
	}
	counter("halo_forwarded_packets_total", "RTP packets written to viewers.", func(s Stats) uint64 { return s.PacketsForwarded })
	counter("halo_forwarded_bytes_total", "RTP bytes written to viewers.", func(s Stats) uint64 { return s.BytesForwarded })
	counter("halo_nacks_received_total", "Packets viewers reported lost.", func(s Stats) uint64 { return s.NACKsReceived })
	counter("halo_nacks_answered_total", "Lost packets resent from the shared cache.", func(s Stats) uint64 { return s.NACKsAnswered })
	counter("halo_nacks_ignored_total", "Lost packets not resent: asked again within an RTT, sent less than an RTT ago, or gone from the cache.", func(s Stats) uint64 { return s.NACKsIgnored })
	counter("halo_nacks_dropped_total", "Lost packets not resent because the viewer's retransmission budget (sfu.nack_budget) was spent.", func(s Stats) uint64 { return s.NACKsDropped })
	counter("halo_plis_sent_total", "Keyframe requests sent to publishers.", func(s Stats) uint64 { return s.PLIsSent })
	counter("halo_plis_received_total", "Picture losses viewers reported (PLI or FIR).", func(s Stats) uint64 { return s.PLIsReceived })
	counter("halo_plis_from_cache_total", "Viewers' picture losses answered by replaying the cached picture to them alone.", func(s Stats) uint64 { return s.PLIsFromCache })
	counter("halo_plis_ignored_total", "Viewers' picture losses ignored (a replay was sent to that viewer within 500 ms).", func(s Stats) uint64 { return s.PLIsIgnored })
	counter("halo_forwarder_skipped_total", "Packets a track's forwarder did not write to its viewers because it fell behind its reader: more than sfu.max_lag (halo_forwarder_skips_total counts the viewers skipped ahead), or more than 1024 packets.", func(s Stats) uint64 { return s.ForwarderSkipped })
	counter("halo_write_errors_total", "Writes to viewers that failed (closed connections).", func(s Stats) uint64 { return s.WriteErrors })
	counter("halo_forwarded_packets_direct_total", "Of halo_forwarded_packets_total, packets the server encrypted and sent itself in batches (the lean write path); the rest went through Pion's write chain (ICE-TCP viewers: a pair not on the engine's UDP sockets; TURN-relayed viewers are on the lean path).", func(s Stats) uint64 { return s.DirectPackets })
	counter("halo_send_calls_total", "sendmmsg system calls of the lean write path, and batches handed to the embedded TURN server's allocations inside the process: halo_forwarded_packets_direct_total divided by this is the mean batch.", func(s Stats) uint64 { return s.SendCalls })
	counter("halo_viewers_handed_over_total", "WHEP viewer connections the engine took over from Pion once up (consent checks, RTCP and sender reports its own; Pion's connection closed).", func(s Stats) uint64 { return s.HandedOver })
	counter("halo_viewers_unparked_total", "WHEP viewer connections brought back from parking by the player's first ICE check (sfu/park.go).", func(s Stats) uint64 { return s.Unparked })
	counter("halo_keyframe_replays_total", "Late joiners started from the cached keyframe.", func(s Stats) uint64 { return s.Replays })
	gauge("halo_tracks", "Published tracks being forwarded.", func(s Stats) int64 { return s.Tracks })
	gauge("halo_sfu_parked_connections", "WHEP sessions answered whose player has not checked yet: parked, with no media connection (a few KiB each, sfu/park.go).", func(s Stats) int64 { return s.Parked })
	gauge("halo_down_tracks", "Viewer copies of tracks.", func(s Stats) int64 { return s.DownTracks })
	registerQualityMetrics(reg, e)
	registerTransportMetrics(reg, e) // transport.go
	registerLagMetrics(reg, e)
	reg.MustRegister(&relayCollector{engine: e,
		tracks:  prometheus.NewDesc("halo_relay_tracks", "Tracks relayed between nodes: in = received from their origin node, out = sent to edge nodes (one per track and edge).", []string{"direction"}, nil),
		packets: prometheus.NewDesc("halo_relay_packets_total", "RTP packets relayed between nodes.", []string{"direction"}, nil),
		bytes:   prometheus.NewDesc("halo_relay_bytes_total", "RTP bytes relayed between nodes.", []string{"direction"}, nil),
	})
	reg.MustRegister(&pathCollector{engine: e, moves: prometheus.NewDesc("halo_ice_path_moves_total",
		"Handed-over WHEP viewers' nominations of a new address (an ICE restart): moved = the address answered the server's own check and media moved there; unanswered = it never answered (no media went there: a spoofed or dead address); refused = not even checked, too many checks in flight.",
		[]string{"result"}, nil)})
	reg.MustRegister(&logCollector{lim: e.logLimit, suppressed: prometheus.NewDesc("halo_log_suppressed_total",
		"Log records of the media plane (Pion's) held back by the rate limit: each cause (the Pion scope and the message) is logged at most once per 10 s, the next line written saying how many were held back. A rising count is a flood of bad packets (e.g. STUN with a wrong integrity).",
		[]string{"cause"}, nil)})
}

// logCollector reports the log records held back, by cause (loglimit.go).
type logCollector struct {
	lim        *logLimiter
	suppressed *prometheus.Desc
}

// Describe implements prometheus.Collector.
func (c *logCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.suppressed }

// Collect implements prometheus.Collector.
func (c *logCollector) Collect(ch chan<- prometheus.Metric) {
	for cause, n := range c.lim.suppressedByCause() {
		ch <- prometheus.MustNewConstMetric(c.suppressed, prometheus.CounterValue, float64(n), cause)
	}
}

// pathCollector reports the path moves by result (pathcheck.go).
type pathCollector struct {
	engine *Engine
	moves  *prometheus.Desc
}

// Describe implements prometheus.Collector.
func (c *pathCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.moves }

// Collect implements prometheus.Collector.
func (c *pathCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.engine.Stats()
	ch <- prometheus.MustNewConstMetric(c.moves, prometheus.CounterValue, float64(s.PathMoves), "moved")
	ch <- prometheus.MustNewConstMetric(c.moves, prometheus.CounterValue, float64(s.PathUnanswered), "unanswered")
	ch <- prometheus.MustNewConstMetric(c.moves, prometheus.CounterValue, float64(s.PathRefused), "refused")
}

// relayCollector reports the relay gauges and counters by direction.
type relayCollector struct {
	engine                 *Engine
	tracks, packets, bytes *prometheus.Desc
}

// Describe implements prometheus.Collector.
func (c *relayCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.tracks
	ch <- c.packets
	ch <- c.bytes
}

// Collect implements prometheus.Collector.
func (c *relayCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.engine.Stats()
	ch <- prometheus.MustNewConstMetric(c.tracks, prometheus.GaugeValue, float64(s.RelayTracksIn), "in")
	ch <- prometheus.MustNewConstMetric(c.tracks, prometheus.GaugeValue, float64(s.RelayTracksOut), "out")
	ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(s.RelayPacketsIn), "in")
	ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(s.RelayPacketsOut), "out")
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(s.RelayBytesIn), "in")
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(s.RelayBytesOut), "out")
}
