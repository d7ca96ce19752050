package sfu

import "time"

// picture follows, packet by packet in arrival order, where the latest
// decodable picture of a video track begins: the first packet (lowest
// sequence number) of the newest access unit that holds a keyframe. A late
// joiner, or a viewer whose decoder lost the picture, is given the packets
// from there on out of the shared cache.
//
// An access unit is the run of packets with one RTP timestamp. Packets may
// arrive out of order (a retransmission the SFU asked for comes late), so the
// start of an access unit moves back when an older packet of the same
// timestamp arrives.
//
// Owned by the track's forwarder goroutine.
type picture struct {
	// The access unit being received.
	auTS    uint32
	auStart uint16
	auKey   bool // a packet of this unit said keyframe
	auValid bool

	// The latest keyframe's access unit.
	kfSeq   uint16
	kfTS    uint32
	kfAt    time.Time
	kfValid bool

	// The newest packet seen (highest sequence number).
	headSeq   uint16
	headTS    uint32
	headValid bool
}

// observe records one packet. key says whether the packet carries part of a
// keyframe; cacheSize is how many packets the cache keeps (a picture longer
// than that cannot be replayed). It returns true when a new keyframe's access
// unit began with this packet or moved to start earlier.
func (p *picture) observe(seq uint16, ts uint32, key bool, cacheSize int, now time.Time) bool {
	if !p.headValid || int16(seq-p.headSeq) > 0 {
		p.headSeq, p.headTS, p.headValid = seq, ts, true
	}
	changed := false
	switch {
	case !p.auValid || int32(ts-p.auTS) > 0:
		// A newer access unit begins.
		p.auTS, p.auStart, p.auKey, p.auValid = ts, seq, key, true
		if key {
			changed = p.setKeyframe(now)
		}
	case ts == p.auTS:
		if int16(seq-p.auStart) < 0 {
			p.auStart = seq // an earlier packet of the unit arrived late
			if p.auKey && p.kfValid && p.kfTS == ts {
				p.kfSeq, changed = seq, true
			}
		}
		if key && !p.auKey {
			p.auKey = true
			changed = p.setKeyframe(now)
		}
	default:
		// A late packet of an older unit: it cannot move the picture back.
	}
	if p.kfValid && int(p.headSeq-p.kfSeq) >= cacheSize-1 {
		// The picture since the keyframe no longer fits the cache: a viewer
		// starting now must wait for a fresh keyframe.
		p.kfValid = false
	}
	return changed
}

func (p *picture) setKeyframe(now time.Time) bool {
	if p.kfValid && p.kfTS == p.auTS {
		return false
	}
	p.kfSeq, p.kfTS, p.kfAt, p.kfValid = p.auStart, p.auTS, now, true
	return true
}

// reset forgets everything (the forwarder lost track of the stream).
func (p *picture) reset() { *p = picture{} }
