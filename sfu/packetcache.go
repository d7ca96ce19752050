package sfu

import (
	"sync"
	"time"
)

// maxCachedPacket is the largest RTP packet the cache keeps. Publishers send
// packets below the path MTU (browsers about 1200 bytes), so anything larger is
// not worth a bigger slot for every entry.
const maxCachedPacket = 1500

// packetCache keeps the last N packets of one published track, indexed by
// sequence number. It is shared by every down-track of the track: a NACK from
// any viewer is answered from here (instead of one cache per viewer, which is
// what costs Pion's stock responder ~2 MB per viewer), and a late joiner is
// given the packets since the last keyframe from here.
//
// One goroutine writes (the track's reader); NACK handlers of all viewers read.
type packetCache struct {
	mu    sync.RWMutex
	mask  uint16
	buf   []byte // len(slots)*maxCachedPacket, one allocation
	slots []cacheSlot
}

type cacheSlot struct {
	at    int64 // arrival, monoNow nanoseconds
	seq   uint16
	size  uint16
	valid bool
}

// newPacketCache returns a cache of size packets; size must be a power of two
// between 1 and 32768 (config validates the user's value).
func newPacketCache(size int) *packetCache {
	if size <= 0 || size > 1<<15 || size&(size-1) != 0 {
		panic("sfu: packet cache size must be a power of two in 1..32768")
	}
	return &packetCache{
		mask:  uint16(size - 1),
		buf:   make([]byte, size*maxCachedPacket),
		slots: make([]cacheSlot, size),
	}
}

// size is the number of packets the cache holds.
func (c *packetCache) size() int { return len(c.slots) }

// put stores a copy of pkt under seq, noting its arrival time at. Packets
// larger than maxCachedPacket are not stored (the slot is invalidated so an
// older packet is not returned).
func (c *packetCache) put(seq uint16, pkt []byte, at int64) {
	i := int(seq & c.mask)
	c.mu.Lock()
	s := &c.slots[i]
	if len(pkt) > maxCachedPacket {
		s.valid = false
	} else {
		copy(c.buf[i*maxCachedPacket:], pkt)
		*s = cacheSlot{at: at, seq: seq, size: uint16(len(pkt)), valid: true}
	}
	c.mu.Unlock()
}

// get copies the packet stored under seq into dst and returns its length, or 0
// when that packet is not (or no longer) in the cache. dst must hold
// maxCachedPacket bytes.
func (c *packetCache) get(seq uint16, dst []byte) int {
	n, _ := c.getAt(seq, dst)
	return n
}

// getAt is get that also returns when the packet arrived (monoNow
// nanoseconds).
func (c *packetCache) getAt(seq uint16, dst []byte) (int, int64) {
	i := int(seq & c.mask)
	c.mu.RLock()
	defer c.mu.RUnlock()
	s := c.slots[i]
	if !s.valid || s.seq != seq || len(dst) < int(s.size) {
		return 0, 0
	}
	return copy(dst, c.buf[i*maxCachedPacket:i*maxCachedPacket+int(s.size)]), s.at
}

// arrival returns when packet seq arrived (monoNow nanoseconds), or false
// when it is not in the cache.
func (c *packetCache) arrival(seq uint16) (int64, bool) {
	i := int(seq & c.mask)
	c.mu.RLock()
	defer c.mu.RUnlock()
	s := c.slots[i]
	return s.at, s.valid && s.seq == seq
}

// monoEpoch anchors monoNow.
var monoEpoch = time.Now()

// monoNow is a monotonic clock in nanoseconds, cheap enough for every packet.
func monoNow() int64 { return int64(time.Since(monoEpoch)) }
