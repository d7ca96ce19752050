package loadtest

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// seqWindow is how far back (in sequence numbers) a late packet can still
// fill a gap. A power of two that divides 65536, so the bitmap index of a
// sequence number is the same before and after a wrap.
const seqWindow = 1024

// seqTracker counts missing RTP sequence numbers of one stream with 16-bit
// wrap handling. A packet that arrives late and fills a gap counted earlier
// takes it back; a duplicate changes nothing. Not safe for concurrent use
// (one reader goroutine owns it).
type seqTracker struct {
	started bool
	highest uint16
	seen    [seqWindow / 64]uint64 // bit per sequence number in the window
}

// push records seq and returns the change to the lost count: the size of a
// gap it opens (positive), -1 when it fills a gap, 0 otherwise.
func (t *seqTracker) push(seq uint16) int {
	if !t.started {
		t.started = true
		t.highest = seq
		t.set(seq)
		return 0
	}
	diff := int(int16(seq - t.highest))
	switch {
	case diff > 0:
		if diff >= seqWindow {
			clear(t.seen[:])
		} else {
			for s := t.highest + 1; s != seq; s++ {
				t.unset(s)
			}
		}
		t.highest = seq
		t.set(seq)
		return diff - 1
	case diff == 0:
		return 0
	case -diff >= seqWindow:
		return 0 // too old to tell a late packet from a duplicate
	default:
		if t.isSet(seq) {
			return 0 // duplicate
		}
		t.set(seq)
		return -1
	}
}

func (t *seqTracker) set(s uint16)   { i := s % seqWindow; t.seen[i/64] |= 1 << (i % 64) }
func (t *seqTracker) unset(s uint16) { i := s % seqWindow; t.seen[i/64] &^= 1 << (i % 64) }
func (t *seqTracker) isSet(s uint16) bool {
	i := s % seqWindow
	return t.seen[i/64]&(1<<(i%64)) != 0
}

// histogram is a log-linear histogram of durations in microseconds: exact
// below 16 us, then 16 buckets per power of two (about 6 % resolution).
// Record is lock-free and allocation-free; histograms merge by adding.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	total  atomic.Uint64
	max    atomic.Int64 // nanoseconds
}

const (
	histSub     = 16
	histBuckets = histSub + 44*histSub // up to 2^48 us
)

func histIndex(us uint64) int {
	if us < histSub {
		return int(us)
	}
	e := bits.Len64(us) - 1 // >= 4
	sub := int(us>>(e-4)) & (histSub - 1)
	i := histSub + (e-4)*histSub + sub
	return min(i, histBuckets-1)
}

// histValue is the middle of bucket i, in microseconds.
func histValue(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	e := (i-histSub)/histSub + 4
	sub := uint64((i - histSub) % histSub)
	lo := (histSub + sub) << (e - 4)
	width := uint64(1) << (e - 4)
	return lo + width/2
}

// record adds one duration; negative durations count as zero.
func (h *histogram) record(d time.Duration) {
	d = max(d, 0)
	h.counts[histIndex(uint64(d/time.Microsecond))].Add(1)
	h.total.Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			break
		}
	}
}

// merge adds the counts of o into h.
func (h *histogram) merge(o *histogram) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c != 0 {
			h.counts[i].Add(c)
		}
	}
	h.total.Add(o.total.Load())
	if m := o.max.Load(); m > h.max.Load() {
		h.max.Store(m)
	}
}

// quantile returns the q-quantile (0 < q <= 1), or 0 when empty.
func (h *histogram) quantile(q float64) time.Duration {
	total := h.total.Load()
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			d := time.Duration(histValue(i)) * time.Microsecond
			return min(d, h.maxDuration())
		}
	}
	return h.maxDuration()
}

func (h *histogram) maxDuration() time.Duration { return time.Duration(h.max.Load()) }

func (h *histogram) count() uint64 { return h.total.Load() }

// Latency is a copy of one or more viewers' one-way video latency
// histograms at one moment (the same log-linear buckets, about 6 %
// resolution). The difference of two copies of one viewer (Since) is the
// distribution over the window between them; copies of several viewers add
// up (Add). The zero value is empty.
type Latency struct {
	counts [histBuckets]uint64
	total  uint64
}

// Latency returns a copy of the viewer's latency histogram as of now.
func (v *Viewer) Latency() *Latency {
	l := &Latency{}
	for i := range v.latency.counts {
		l.counts[i] = v.latency.counts[i].Load()
		l.total += l.counts[i]
	}
	return l
}

// Since returns what l holds beyond earlier, a copy of the same histogram
// taken before it.
func (l *Latency) Since(earlier *Latency) *Latency {
	d := &Latency{}
	for i := range l.counts {
		if l.counts[i] > earlier.counts[i] {
			d.counts[i] = l.counts[i] - earlier.counts[i]
			d.total += d.counts[i]
		}
	}
	return d
}

// Add adds the counts of o to l.
func (l *Latency) Add(o *Latency) {
	for i := range o.counts {
		l.counts[i] += o.counts[i]
	}
	l.total += o.total
}

// Count returns the number of frames recorded.
func (l *Latency) Count() uint64 { return l.total }

// Quantile returns the q-quantile (0 < q <= 1) as the middle of its bucket,
// or 0 when empty. Quantile(1) is the largest bucket seen.
func (l *Latency) Quantile(q float64) time.Duration {
	if l.total == 0 {
		return 0
	}
	rank := max(uint64(q*float64(l.total)+0.5), 1)
	var seen uint64
	for i, c := range l.counts {
		seen += c
		if seen >= rank {
			return time.Duration(histValue(i)) * time.Microsecond
		}
	}
	return 0
}

// buckets returns the non-empty buckets of l as [middle in microseconds,
// count] (the form reports carry; latencyFromBuckets reads it back).
func (l *Latency) buckets() [][2]uint64 {
	out := [][2]uint64{}
	for i, c := range l.counts {
		if c != 0 {
			out = append(out, [2]uint64{histValue(i), c})
		}
	}
	return out
}

// latencyFromBuckets rebuilds a Latency from buckets (unknown values land
// in the bucket that holds them).
func latencyFromBuckets(b [][2]uint64) *Latency {
	l := &Latency{}
	for _, kv := range b {
		l.counts[histIndex(kv[0])] += kv[1]
		l.total += kv[1]
	}
	return l
}

// cdf returns the cumulative distribution at every non-empty bucket, thinned
// to at most 200 points (the last point is always 1).
func (l *Latency) cdf() []CDFPoint {
	out := []CDFPoint{}
	if l.total == 0 {
		return out
	}
	var seen uint64
	for i, c := range l.counts {
		if c == 0 {
			continue
		}
		seen += c
		out = append(out, CDFPoint{LatencyMS: float64(histValue(i)) / 1000, Fraction: float64(seen) / float64(l.total)})
	}
	if len(out) > 200 {
		step := float64(len(out)) / 200
		thin := make([]CDFPoint, 0, 201)
		for f := 0.0; int(f) < len(out)-1; f += step {
			thin = append(thin, out[int(f)])
		}
		out = append(thin, out[len(out)-1])
	}
	return out
}
