package hls

import (
	"sync/atomic"

	"github.com/pion/rtp"
)

// ringSlots is how many packets may wait between a track's forwarder and
// the muxer: about two seconds of a 2.5 Mbit/s broadcast. A muxer further
// behind loses packets (counted), never the forwarder's time.
const ringSlots = 512

// slotBytes holds any packet the sfu forwards (its cache keeps at most
// this much of one packet).
const slotBytes = 1500

// slot is one packet on its way to the muxer.
type slot struct {
	video  bool
	marker bool
	seq    uint16
	ts     uint32
	n      int
	buf    [slotBytes]byte
}

// ring hands packets from the taps (on the tracks' forwarders) to the
// session's goroutine without allocating: free slots go round through two
// channels, each as large as the number of slots, so neither side blocks.
type ring struct {
	slots   []slot
	free    chan int
	full    chan int
	dropped atomic.Uint64  // this ring's drops
	total   *atomic.Uint64 // the server's
}

func newRing(total *atomic.Uint64) *ring {
	r := &ring{slots: make([]slot, ringSlots), free: make(chan int, ringSlots), full: make(chan int, ringSlots), total: total}
	for i := range ringSlots {
		r.free <- i
	}
	return r
}

// put copies one packet into a free slot for the session. It never blocks:
// with no free slot the packet is dropped and counted.
func (r *ring) put(video bool, h *rtp.Header, payload []byte) {
	if len(payload) > slotBytes {
		r.drop()
		return
	}
	select {
	case i := <-r.free:
		s := &r.slots[i]
		s.video, s.marker, s.seq, s.ts = video, h.Marker, h.SequenceNumber, h.Timestamp
		s.n = copy(s.buf[:], payload)
		r.full <- i // never blocks: at most ringSlots indices are out
	default:
		r.drop()
	}
}

func (r *ring) drop() {
	r.dropped.Add(1)
	r.total.Add(1)
}

// input is the RTPWriter of one tapped track.
type input struct {
	r     *ring
	video bool
}

// WriteRTP queues the packet for the muxer; it runs on the track's
// forwarder and never blocks.
func (in input) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	in.r.put(in.video, h, payload)
	return len(payload), nil
}
