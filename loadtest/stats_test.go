package loadtest

import (
	"testing"
	"time"
)

func TestSeqTracker_CountsGaps(t *testing.T) {
	tests := []struct {
		name string
		seqs []uint16
		lost int
	}{
		{name: "in order", seqs: []uint16{1, 2, 3, 4}, lost: 0},
		{name: "one gap", seqs: []uint16{1, 2, 5, 6}, lost: 2},
		{name: "wrap without loss", seqs: []uint16{65534, 65535, 0, 1}, lost: 0},
		{name: "gap across wrap", seqs: []uint16{65533, 1}, lost: 3},
		{name: "late packet fills a gap", seqs: []uint16{1, 2, 4, 3, 5}, lost: 0},
		{name: "late packet across wrap", seqs: []uint16{65534, 0, 65535, 1}, lost: 0},
		{name: "reordered gap partly filled", seqs: []uint16{10, 14, 12}, lost: 2},
		{name: "duplicates ignored", seqs: []uint16{1, 2, 2, 3, 3, 1}, lost: 0},
		{name: "duplicate of a late packet ignored", seqs: []uint16{1, 3, 2, 2}, lost: 0},
		{name: "too old to judge", seqs: []uint16{1, 3, 3 + seqWindow, 2}, lost: 1 + seqWindow - 1},
		{name: "big jump forward", seqs: []uint16{100, 100 + 2000}, lost: 1999},
		{name: "first packet sets the base", seqs: []uint16{40000}, lost: 0},
		{name: "many wraps in order", seqs: wrapRun(3 * 65536), lost: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var tr seqTracker
			lost := 0
			for _, s := range tc.seqs {
				lost += tr.push(s)
			}
			if lost != tc.lost {
				t.Fatalf("lost = %d, want %d", lost, tc.lost)
			}
		})
	}
}

func wrapRun(n int) []uint16 {
	out := make([]uint16, n)
	for i := range out {
		out[i] = uint16(60000 + i)
	}
	return out
}

func TestSeqTracker_GapReopenedAfterWindowMoves(t *testing.T) {
	// A sequence number reused after a wrap must not be taken as seen.
	var tr seqTracker
	lost := tr.push(0)
	for s := 1; s < 65536; s++ {
		if s == 5 {
			continue
		}
		lost += tr.push(uint16(s))
	}
	if lost != 1 {
		t.Fatalf("lost = %d, want 1", lost)
	}
	lost += tr.push(1) // next cycle: 65535 -> 1 skips 0
	if lost != 2 {
		t.Fatalf("lost = %d, want 2", lost)
	}
	lost += tr.push(0) // late, fills the gap just opened
	if lost != 1 {
		t.Fatalf("lost = %d, want 1", lost)
	}
}

func TestHistogram_Quantiles(t *testing.T) {
	var h histogram
	if h.quantile(0.5) != 0 || h.maxDuration() != 0 {
		t.Fatal("empty histogram is not zero")
	}
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Millisecond)
	}
	h.record(-time.Second) // counts as zero
	check := func(name string, got, want time.Duration) {
		t.Helper()
		if diff := got - want; diff < -want/16 || diff > want/16 {
			t.Fatalf("%s = %s, want %s within 6%%", name, got, want)
		}
	}
	check("p50", h.quantile(0.5), 500*time.Millisecond)
	check("p95", h.quantile(0.95), 950*time.Millisecond)
	if h.maxDuration() != time.Second {
		t.Fatalf("max = %s", h.maxDuration())
	}
	if h.quantile(1) > h.maxDuration() {
		t.Fatal("p100 above max")
	}

	var sum histogram
	sum.merge(&h)
	sum.merge(&h)
	if sum.count() != 2*h.count() || sum.quantile(0.5) != h.quantile(0.5) || sum.maxDuration() != time.Second {
		t.Fatalf("merge: count %d p50 %s max %s", sum.count(), sum.quantile(0.5), sum.maxDuration())
	}
}

func TestHistogram_BucketsAreMonotonic(t *testing.T) {
	prev := -1
	for us := uint64(0); us < 1<<22; us += 1 + us/64 {
		i := histIndex(us)
		if i < prev {
			t.Fatalf("index of %d us is %d, below %d", us, i, prev)
		}
		if v := histValue(i); v+v/8 < us || v > us+us/8+1 {
			t.Fatalf("bucket %d value %d us for %d us", i, v, us)
		}
		prev = i
	}
}

func TestLatency_CopiesSubtractToAWindowAndAdd(t *testing.T) {
	v := NewViewer(ViewerConfig{})
	for range 100 {
		v.latency.record(2 * time.Millisecond)
	}
	early := v.Latency()
	for range 98 {
		v.latency.record(40 * time.Millisecond)
	}
	v.latency.record(300 * time.Millisecond)
	v.latency.record(time.Second)
	late := v.Latency()
	window := late.Since(early)

	near := func(got, want time.Duration) bool { return got >= want*94/100 && got <= want*106/100 }
	if window.Count() != 100 || !near(window.Quantile(0.5), 40*time.Millisecond) ||
		!near(window.Quantile(0.99), 300*time.Millisecond) || !near(window.Quantile(1), time.Second) {
		t.Fatalf("window: %d frames, p50 %s p99 %s max %s; want 100, 40 ms, 300 ms, 1 s",
			window.Count(), window.Quantile(0.5), window.Quantile(0.99), window.Quantile(1))
	}
	if !near(early.Quantile(1), 2*time.Millisecond) {
		t.Fatalf("the earlier copy changed: max %s", early.Quantile(1))
	}
	var sum Latency
	sum.Add(early)
	sum.Add(window)
	if sum.Count() != late.Count() || sum.Quantile(0.5) != late.Quantile(0.5) || sum.Quantile(0.99) != late.Quantile(0.99) {
		t.Fatalf("early + window: %d p50 %s p99 %s; late: %d p50 %s p99 %s",
			sum.Count(), sum.Quantile(0.5), sum.Quantile(0.99), late.Count(), late.Quantile(0.5), late.Quantile(0.99))
	}
	var empty Latency
	if empty.Quantile(0.99) != 0 || late.Since(late).Count() != 0 {
		t.Fatal("an empty window has no quantiles")
	}
	if s := v.Stats(); !near(s.LatencyP99, 40*time.Millisecond) { // 198th of 200
		t.Fatalf("Stats p99 %s, want ~40 ms", s.LatencyP99)
	}
}
