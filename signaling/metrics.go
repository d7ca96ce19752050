package signaling

import (
	"github.com/halobuzz/live/internal/version"
	"github.com/halobuzz/live/room"
	"github.com/halobuzz/live/sfu"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the node's Prometheus metrics. Counters of the media plane and
// the room counts are read at scrape time from their owners, so the packet
// path only touches its own atomic counters.
type Metrics struct {
	reg         *prometheus.Registry
	errors      *prometheus.CounterVec
	joinLatency prometheus.Histogram
	connections prometheus.Gauge
	slowClients prometheus.Counter
}

// NewMetrics registers the node's metrics in a new registry. Every series
// carries the constant labels node and region (of rooms), so the series of
// all nodes of a cluster can be told apart and summed per region whatever
// the scrape configuration.
func NewMetrics(engine *sfu.Engine, rooms *room.Manager) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
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
	var reg prometheus.Registerer = m.reg
	if rooms != nil {
		reg = prometheus.WrapRegistererWith(prometheus.Labels{"node": rooms.NodeID(), "region": rooms.Region()}, m.reg)
	}
	reg.MustRegister(m.errors, m.joinLatency, m.connections, m.slowClients,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	bi := version.Get()
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "halo_build_info",
		Help:        "Always 1; its labels name the running build (halo-sfu --version).",
		ConstLabels: prometheus.Labels{"version": bi.Version, "commit": bi.Commit, "go": bi.Go}},
		func() float64 { return 1 }))
	if engine != nil {
		registerBWEMetrics(reg, engine)
		counter := func(name, help string, f func(sfu.Stats) uint64) {
			reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
				func() float64 { return float64(f(engine.Stats())) }))
		}
		gauge := func(name, help string, f func(sfu.Stats) int64) {
			reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
				func() float64 { return float64(f(engine.Stats())) }))
		}
		counter("halo_forwarded_packets_total", "RTP packets written to viewers.", func(s sfu.Stats) uint64 { return s.PacketsForwarded })
		counter("halo_forwarded_bytes_total", "RTP bytes written to viewers.", func(s sfu.Stats) uint64 { return s.BytesForwarded })
		// The names before Prometheus's unit-last rule, kept for one
		// release (CHANGELOG.md).
		counter("halo_packets_forwarded_total", "Deprecated: use halo_forwarded_packets_total; removed in the next release.", func(s sfu.Stats) uint64 { return s.PacketsForwarded })
		counter("halo_bytes_forwarded_total", "Deprecated: use halo_forwarded_bytes_total; removed in the next release.", func(s sfu.Stats) uint64 { return s.BytesForwarded })
		counter("halo_nacks_received_total", "Packets viewers reported lost.", func(s sfu.Stats) uint64 { return s.NACKsReceived })
		counter("halo_nacks_answered_total", "Lost packets resent from the shared cache.", func(s sfu.Stats) uint64 { return s.NACKsAnswered })
		counter("halo_nacks_ignored_total", "Lost packets not resent: asked again within an RTT, sent less than an RTT ago, or gone from the cache.", func(s sfu.Stats) uint64 { return s.NACKsIgnored })
		counter("halo_nacks_dropped_total", "Lost packets not resent because the viewer's retransmission budget (sfu.nack_budget) was spent.", func(s sfu.Stats) uint64 { return s.NACKsDropped })
		counter("halo_plis_sent_total", "Keyframe requests sent to publishers.", func(s sfu.Stats) uint64 { return s.PLIsSent })
		counter("halo_plis_received_total", "Picture losses viewers reported (PLI or FIR).", func(s sfu.Stats) uint64 { return s.PLIsReceived })
		counter("halo_plis_from_cache_total", "Viewers' picture losses answered by replaying the cached picture to them alone.", func(s sfu.Stats) uint64 { return s.PLIsFromCache })
		counter("halo_plis_ignored_total", "Viewers' picture losses ignored (a replay was sent to that viewer within 500 ms).", func(s sfu.Stats) uint64 { return s.PLIsIgnored })
		counter("halo_forwarder_skipped_total", "Packets a track's forwarder skipped because it fell more than 1024 packets behind its reader.", func(s sfu.Stats) uint64 { return s.ForwarderSkipped })
		counter("halo_write_errors_total", "Writes to viewers that failed (closed connections).", func(s sfu.Stats) uint64 { return s.WriteErrors })
		counter("halo_forwarded_packets_direct_total", "Of halo_forwarded_packets_total, packets the server encrypted and sent itself in batches (the lean write path); the rest went through Pion's write chain (ICE-TCP or TURN viewers).", func(s sfu.Stats) uint64 { return s.DirectPackets })
		counter("halo_send_calls_total", "sendmmsg system calls of the lean write path: halo_forwarded_packets_direct_total divided by this is the mean batch.", func(s sfu.Stats) uint64 { return s.SendCalls })
		counter("halo_viewers_handed_over_total", "WHEP viewer connections the engine took over from Pion once up (consent checks, RTCP and sender reports its own; Pion's connection closed).", func(s sfu.Stats) uint64 { return s.HandedOver })
		counter("halo_keyframe_replays_total", "Late joiners started from the cached keyframe.", func(s sfu.Stats) uint64 { return s.Replays })
		gauge("halo_tracks", "Published tracks being forwarded.", func(s sfu.Stats) int64 { return s.Tracks })
		gauge("halo_down_tracks", "Viewer copies of tracks.", func(s sfu.Stats) int64 { return s.DownTracks })
		registerQualityMetrics(reg, engine)
		reg.MustRegister(&relayCollector{engine: engine,
			tracks:  prometheus.NewDesc("halo_relay_tracks", "Tracks relayed between nodes: in = received from their origin node, out = sent to edge nodes (one per track and edge).", []string{"direction"}, nil),
			packets: prometheus.NewDesc("halo_relay_packets_total", "RTP packets relayed between nodes.", []string{"direction"}, nil),
			bytes:   prometheus.NewDesc("halo_relay_bytes_total", "RTP bytes relayed between nodes.", []string{"direction"}, nil),
		})
	}
	if rooms != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "halo_rooms", Help: "Rooms on this node."},
			func() float64 { return float64(rooms.Stats().Rooms) }))
		registerStoreMetrics(reg, rooms)
		reg.MustRegister(&participantsCollector{rooms: rooms, desc: prometheus.NewDesc(
			"halo_participants", "Participants on this node, by role.", []string{"role"}, nil)})
	}
	return m
}

// registerStoreMetrics adds the metrics of the node's use of the room
// Store (Redis in a cluster).
func registerStoreMetrics(reg prometheus.Registerer, rooms *room.Manager) {
	registerStoreLatency(reg, rooms)
	counter := func(name, help string, f func(room.StoreStats) uint64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(f(rooms.StoreStats())) }))
	}
	counter("halo_store_queue_dropped_total", "Room store writes dropped because the write queue was full (repaired by re-registration).",
		func(s room.StoreStats) uint64 { return s.QueueDropped })
	counter("halo_store_write_errors_total", "Room store writes that failed (Redis errors or timeouts).",
		func(s room.StoreStats) uint64 { return s.WriteErrors })
	counter("halo_store_heartbeat_failures_total", "Heartbeats that did not reach the store.",
		func(s room.StoreStats) uint64 { return s.HeartbeatFailures })
	counter("halo_store_resyncs_total", "Rewrites of this node's state into the store (re-registration after an outage or a lost write).",
		func(s room.StoreStats) uint64 { return s.Resyncs })
	counter("halo_origin_lost_total", "Times a room on this node lost the node that published its tracks (it died or drained); its viewers wait for the broadcaster to publish again.",
		func(s room.StoreStats) uint64 { return s.OriginsLost })
	counter("halo_drain_handover_timeouts_total", "Drains that ended before every redirected client and every relay served had moved to another node.",
		func(s room.StoreStats) uint64 { return s.HandOverTimeouts })
	for result, f := range map[string]func(room.StoreStats) uint64{
		"connected": func(s room.StoreStats) uint64 { return s.RelaysConnected },
		"failed":    func(s room.StoreStats) uint64 { return s.RelaysFailed },
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "halo_relay_connections_total",
			Help:        "Relay connections this node set up to origin nodes (one per origin and room, one more when the origin starts a track the relay lacks), and those that failed.",
			ConstLabels: prometheus.Labels{"result": result}},
			func() float64 { return float64(f(rooms.StoreStats())) }))
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "halo_draining",
		Help: "1 while the node drains (SIGTERM): it takes no new session and hands its clients and relays over."},
		func() float64 {
			if rooms.StoreStats().Draining {
				return 1
			}
			return 0
		}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "halo_drain_sessions",
		Help: "Participants and relays still on the node while it drains (0 when it does not)."},
		func() float64 {
			if !rooms.StoreStats().Draining {
				return 0
			}
			s := rooms.Stats()
			return float64(s.Participants + s.Relays)
		}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "halo_cluster_nodes",
		Help: "Live nodes in the cluster's registry at the last heartbeat (1 for a node alone)."},
		func() float64 { return float64(rooms.StoreStats().Nodes) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "halo_store_up",
		Help: "1 when the last heartbeat reached the store (always 1 for a node that serves alone)."},
		func() float64 {
			if rooms.StoreStats().Up {
				return 1
			}
			return 0
		}))
}

// Registry returns the registry to serve on the metrics listener.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

type participantsCollector struct {
	rooms *room.Manager
	desc  *prometheus.Desc
}

// Describe implements prometheus.Collector.
func (c *participantsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *participantsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.rooms.Stats()
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(s.Publishers), "publisher")
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(s.Viewers), "viewer")
}

// relayCollector reports the relay gauges and counters by direction.
type relayCollector struct {
	engine                 *sfu.Engine
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
