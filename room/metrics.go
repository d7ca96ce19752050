package room

import (
	"github.com/prometheus/client_golang/prometheus"
)

// RegisterMetrics registers the room layer's metrics on reg: rooms and
// participants on this node, and the node's use of the shared store (Redis
// in a cluster): its write queue, heartbeats, re-registrations, relays,
// origins lost and the drain. Everything is read at scrape time.
func (m *Manager) RegisterMetrics(reg prometheus.Registerer) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "halo_rooms", Help: "Rooms on this node."},
		func() float64 { return float64(m.Stats().Rooms) }))
	registerStoreMetrics(reg, m)
	m.registerModerationMetrics(reg) // moderation.go
	m.registerTrunkMetrics(reg)      // relay_trunk_metrics.go
	reg.MustRegister(&participantsCollector{rooms: m, desc: prometheus.NewDesc(
		"halo_participants", "Participants on this node, by role.", []string{"role"}, nil)})
}

// registerStoreMetrics adds the metrics of the node's use of the room
// Store (Redis in a cluster).
func registerStoreMetrics(reg prometheus.Registerer, rooms *Manager) {
	registerStoreLatency(reg, rooms)
	counter := func(name, help string, f func(StoreStats) uint64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(f(rooms.StoreStats())) }))
	}
	counter("halo_store_queue_dropped_total", "Room store writes dropped because the write queue was full (repaired by re-registration).",
		func(s StoreStats) uint64 { return s.QueueDropped })
	counter("halo_store_write_errors_total", "Room store writes that failed (Redis errors or timeouts).",
		func(s StoreStats) uint64 { return s.WriteErrors })
	counter("halo_store_heartbeat_failures_total", "Heartbeats that did not reach the store.",
		func(s StoreStats) uint64 { return s.HeartbeatFailures })
	counter("halo_store_resyncs_total", "Rewrites of this node's state into the store (re-registration after an outage or a lost write).",
		func(s StoreStats) uint64 { return s.Resyncs })
	counter("halo_origin_lost_total", "Times a room on this node lost the node that published its tracks (it died or drained); its viewers wait for the broadcaster to publish again.",
		func(s StoreStats) uint64 { return s.OriginsLost })
	counter("halo_drain_handover_timeouts_total", "Drains that ended before every redirected client and every relay served had moved to another node.",
		func(s StoreStats) uint64 { return s.HandOverTimeouts })
	counter("halo_relay_silent_after_stall_total", "Relays from origin nodes found silent after this process resumed from a stall (the origin had ended them meanwhile), dropped and asked for again.",
		func(s StoreStats) uint64 { return s.RelaysSilent })
	counter("halo_relay_media_lost_total", "Relays whose packets stopped arriving while their origin's sender reports said it was sending them, dropped and asked for again.",
		func(s StoreStats) uint64 { return s.RelaysMediaLost })
	for result, f := range map[string]func(StoreStats) uint64{
		"connected": func(s StoreStats) uint64 { return s.RelaysConnected },
		"failed":    func(s StoreStats) uint64 { return s.RelaysFailed },
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

type participantsCollector struct {
	rooms *Manager
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

// storeLatencyCollector exports the heartbeats' round trips to the store.
type storeLatencyCollector struct {
	rooms *Manager
	desc  *prometheus.Desc
}

func registerStoreLatency(reg prometheus.Registerer, rooms *Manager) {
	reg.MustRegister(&storeLatencyCollector{rooms: rooms, desc: prometheus.NewDesc("halo_store_heartbeat_duration_seconds",
		"Heartbeats that reached the store (Redis): the registry entry and the lease renewal, two round trips.", nil, nil)})
}

// Describe implements prometheus.Collector.
func (c *storeLatencyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *storeLatencyCollector) Collect(ch chan<- prometheus.Metric) {
	h := c.rooms.StoreStats().HeartbeatLatency
	buckets := make(map[float64]uint64, len(LatencyBuckets))
	for i, b := range LatencyBuckets {
		if i < len(h.Buckets) {
			buckets[b] = h.Buckets[i]
		}
	}
	ch <- prometheus.MustNewConstHistogram(c.desc, h.Count, h.SumSeconds, buckets)
}
