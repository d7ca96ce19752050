package hls

import (
	"sync/atomic"
	"testing"

	"github.com/pion/rtp"
)

// A tap's write on the track's forwarder allocates nothing, and a full ring
// drops (and counts) instead of waiting for the muxer.
func TestRing_PutAllocatesNothingAndNeverBlocks(t *testing.T) {
	var total atomic.Uint64
	r := newRing(&total)
	in := input{r: r, video: true}
	h := &rtp.Header{SequenceNumber: 1, Timestamp: 90000, Marker: true}
	payload := make([]byte, 1200)
	allocs := testing.AllocsPerRun(100, func() {
		_, _ = in.WriteRTP(h, payload)
		r.free <- <-r.full // the session's side, giving the slot back
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per packet", allocs)
	}
	for range ringSlots + 10 {
		_, _ = in.WriteRTP(h, payload)
	}
	if got := total.Load(); got != 10 {
		t.Fatalf("%d packets dropped by a full ring, want 10", got)
	}
}
