package sfu

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Bounded lag. A node short of CPU (its own audience, a noisy neighbour, a
// hot room) runs its forwarders slower than packets arrive. The reader
// never waits for them (track.go), so the backlog is the forwarder's: the
// packets between the reader's newest and the one being forwarded. Sent as
// it is, that backlog puts every viewer of the track seconds behind live,
// a delay that only grows while the node stays overloaded.
//
// So the forwarder measures its lag on every packet (now minus the
// packet's arrival at ingest) and, past sfu.max_lag, skips: it reads the
// rest of the backlog only to follow where the pictures begin, writes none
// of it, and moves every viewer of the track to a new start. A viewer's
// video then starts again on the next keyframe, asked of the publisher at
// once (one request per track, however many viewers; replaying the cached
// picture to each of them is what an overloaded node cannot afford), its
// audio with the next packet; sequence numbers continue (no loss to report, no
// NACK for the skipped packets), timestamps advance by the wall-clock time
// since the last packet sent. The viewer sees a jump forward, not a drift.
//
// A joiner is started on the cached picture, replayed to it by the
// forwarder's replay rounds within budgets (track.go). On a starved node
// those rounds fall behind too, and a replay that never catches up leaves
// its viewer as far behind live as the packet cache holds, with nothing
// skipped and nothing lost to see (measured: 4-7 s, docs/benchmarks.md
// section 16). So a replay that has not reached live within sfu.max_lag of
// its start is given up the same way: the viewer starts on the next
// keyframe, sent live, and the skip is counted.

// lagBuckets are the upper bounds, in seconds, of the forwarder lag
// histogram (halo_forwarder_lag_seconds).
var lagBuckets = [...]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// lagHistogram counts forwarder lags with atomics: the packet path never
// touches a Prometheus type; the collector reads it at scrape time.
type lagHistogram struct {
	counts [len(lagBuckets) + 1]atomic.Uint64 // the last: above every bound
	sumNs  atomic.Uint64
}

// observe records one lag in nanoseconds.
func (h *lagHistogram) observe(ns int64) {
	ns = max(ns, 0)
	s := float64(ns) / 1e9
	i := 0
	for i < len(lagBuckets) && s > lagBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNs.Add(uint64(ns))
}

// lagCollector reports the forwarder lag histogram and the skips.
type lagCollector struct {
	engine     *Engine
	lag, skips *prometheus.Desc
}

func registerLagMetrics(reg prometheus.Registerer, e *Engine) {
	reg.MustRegister(&lagCollector{engine: e,
		lag: prometheus.NewDesc("halo_forwarder_lag_seconds",
			"How far behind its reader a track's forwarder was when it took each packet (the packet's arrival at the node to the start of its writes to viewers). Beyond sfu.max_lag the forwarder skips its viewers ahead.",
			nil, nil),
		skips: prometheus.NewDesc("halo_forwarder_skips_total",
			"Viewers a forwarder skipped ahead to the newest picture because it fell more than sfu.max_lag behind (an overloaded node), or whose start (the replay of the cached picture) had not reached live within sfu.max_lag: one per viewer and skip; the viewer sees a jump forward.",
			nil, nil),
	})
}

// Describe implements prometheus.Collector.
func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lag
	ch <- c.skips
}

// Collect implements prometheus.Collector.
func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	h := &c.engine.lag
	buckets := make(map[float64]uint64, len(lagBuckets))
	var n uint64
	for i, le := range lagBuckets {
		n += h.counts[i].Load()
		buckets[le] = n
	}
	n += h.counts[len(lagBuckets)].Load()
	ch <- prometheus.MustNewConstHistogram(c.lag, n, float64(h.sumNs.Load())/1e9, buckets)
	ch <- prometheus.MustNewConstMetric(c.skips, prometheus.CounterValue, float64(c.engine.stats.forwarderSkips.Load()))
}

// skipAhead is called by the forwarder when the packet it just took (at
// arrival index t.read, already followed by t.pic) is more than max_lag
// old. It consumes the rest of the backlog without writing it, following
// the pictures, and moves every viewer to a new start.
func (t *Track) skipAhead() {
	w := t.written.Load()
	skipped := w - t.read // this packet and the rest
	t.read++
	if w-t.read > arrivalRing {
		t.read = w - arrivalRing // lapped meanwhile: the oldest entries were overwritten
	}
	for ; t.read < w; t.read++ {
		t.take(uint16(t.arrivals[t.read%arrivalRing].Load()))
	}
	t.read-- // the caller's loop steps past the last one
	t.engine.stats.forwarderSkipped.Add(skipped)
	var viewers uint64
	for _, d := range *t.downs.Load() {
		if d.skip(t) {
			viewers++
		}
	}
	t.engine.stats.forwarderSkips.Add(viewers)
}

// skip makes a started down-track of t start again at t's next keyframe
// (onPacket). It reports whether it was started.
func (d *DownTrack) skip(t *Track) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.src.Load() != t || d.state == dtWaiting {
		return false
	}
	d.state = dtWaiting
	d.needFresh = true
	return true
}
