package room

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Relay trunk metrics (issue 27, item 7), read at scrape time: the trunks
// this node pulls and serves, and for each trunk it pulls, its origin's
// tracks on it and the media sections of its session description (the
// trunk is opened afresh past maxTrunkSections), and the bytes taken in over
// it since it opened. halo_relay_bytes_total
// and halo_relay_packets_total (sfu) count what crosses relays, trunks
// included.
type trunkCollector struct {
	m                        *Manager
	trunks, tracks, sections *prometheus.Desc
	opened, bytes            *prometheus.Desc
}

func (m *Manager) registerTrunkMetrics(reg prometheus.Registerer) {
	reg.MustRegister(&trunkCollector{
		m:        m,
		trunks:   prometheus.NewDesc("halo_relay_trunks", "Relay trunks up: one connection per node pair carrying every room's relays; direction=\"in\" those this node pulls from origins, \"out\" those it serves to edges.", []string{"direction"}, nil),
		tracks:   prometheus.NewDesc("halo_relay_trunk_tracks", "Tracks carried by each relay trunk this node pulls, by origin node.", []string{"origin"}, nil),
		sections: prometheus.NewDesc("halo_relay_trunk_sections", "Media sections of each relay trunk this node pulls, those of tracks it no longer carries included; past 256 the trunk is opened afresh.", []string{"origin"}, nil),
		bytes:    prometheus.NewDesc("halo_relay_trunk_received_bytes_total", "RTP bytes (headers included) taken in over each relay trunk this node pulls, by origin node, since the trunk opened (a re-establishment starts it again from zero).", []string{"origin"}, nil),
		opened:   prometheus.NewDesc("halo_relay_trunks_opened_total", "Relay trunks this node opened toward origins; more than one per origin node are re-establishments (a trunk lost, or opened afresh past its section limit).", nil, nil),
	})
}

func (c *trunkCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.trunks
	ch <- c.tracks
	ch <- c.sections
	ch <- c.opened
	ch <- c.bytes
}

func (c *trunkCollector) Collect(ch chan<- prometheus.Metric) {
	ts := c.m.trunkSet()
	ts.mu.Lock()
	in := make([]*edgeTrunk, 0, len(ts.in))
	for _, et := range ts.in {
		in = append(in, et)
	}
	out := len(ts.out)
	ts.mu.Unlock()
	up := 0
	for _, et := range in {
		select {
		case <-et.ready:
		default:
			continue // being set up
		}
		if et.err != nil || et.in == nil {
			continue
		}
		up++
		ch <- prometheus.MustNewConstMetric(c.tracks, prometheus.GaugeValue, float64(et.in.Tracks()), et.origin)
		ch <- prometheus.MustNewConstMetric(c.sections, prometheus.GaugeValue, float64(et.in.Sections()), et.origin)
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(et.in.BytesIn()), et.origin)
	}
	ch <- prometheus.MustNewConstMetric(c.trunks, prometheus.GaugeValue, float64(up), "in")
	ch <- prometheus.MustNewConstMetric(c.trunks, prometheus.GaugeValue, float64(out), "out")
	ch <- prometheus.MustNewConstMetric(c.opened, prometheus.CounterValue, float64(c.m.trunksOpened.Load()))
}
