package loadtest

// frameWindow is how many recent packets of a video track a frameAssembler
// remembers (a power of two). It holds the largest keyframe the publisher
// makes (about 200 packets at 8 Mbit/s) and the reordering NACK repair
// brings, twice over.
const frameWindow = 512

// Flags of a remembered packet.
const (
	fpHas    = 1 << iota // the slot holds a received packet
	fpStart              // it begins its frame (the codec says so)
	fpMarker             // RTP marker: it ends its frame
	fpDone               // marker slot of a frame already counted whole
)

// framePacket is what a frameAssembler keeps of one packet.
type framePacket struct {
	sentAt int64 // send time carried by the packet, 0 when none
	ts     uint32
	seq    uint16
	flags  uint8
}

// frameAssembler tells when a video frame has arrived whole: every packet
// from the one that begins it (the codec's start flag) to the one with the
// RTP marker, with contiguous sequence numbers and one RTP timestamp. A
// frame with a packet missing for good is never whole, and neither is one
// cut short: the server's skip ahead (sfu.max_lag) keeps sequence numbers
// contiguous, so a frame whose tail was never sent ends without its
// marker packet, at a packet of the next timestamp. A packet filling a gap
// late (NACK repair, reordering) completes its frame then. It does not
// allocate; one per video track, owned by its reader goroutine.
type frameAssembler struct {
	slots [frameWindow]framePacket
}

// frameDone is a frame found whole by add.
type frameDone struct {
	ok     bool
	sentAt int64 // a send time one of its packets carried, 0 when none
}

// add remembers one received packet and reports whether it completed its
// frame. A duplicate (a retransmission of a packet already here) changes
// nothing.
func (a *frameAssembler) add(seq uint16, ts uint32, marker, start bool, sentAt int64) frameDone {
	s := &a.slots[seq%frameWindow]
	if s.flags&fpHas != 0 && s.seq == seq {
		return frameDone{}
	}
	*s = framePacket{sentAt: sentAt, ts: ts, seq: seq, flags: fpHas}
	if marker {
		s.flags |= fpMarker
	}
	if start {
		s.flags |= fpStart
	}
	return a.complete(seq, ts)
}

// at returns the slot of seq if it holds that packet, else nil.
func (a *frameAssembler) at(seq uint16) *framePacket {
	s := &a.slots[seq%frameWindow]
	if s.flags&fpHas == 0 || s.seq != seq {
		return nil
	}
	return s
}

// complete looks for the whole frame of timestamp ts around seq: forward
// to its marker first (in-order arrival stops there at once), then back to
// its start.
func (a *frameAssembler) complete(seq uint16, ts uint32) frameDone {
	const limit = frameWindow / 2
	var sentAt int64
	end := seq
	for n := 0; ; n++ {
		s := a.at(end)
		if s == nil || s.ts != ts || n == limit {
			return frameDone{} // missing, or cut short: no marker of its own
		}
		if sentAt == 0 {
			sentAt = s.sentAt
		}
		if s.flags&fpMarker != 0 {
			if s.flags&fpDone != 0 {
				return frameDone{}
			}
			break
		}
		end++
	}
	begin := seq
	for n := 0; ; n++ {
		s := a.at(begin)
		if s == nil || s.ts != ts || n == limit {
			return frameDone{} // missing, or begun mid-frame
		}
		if sentAt == 0 {
			sentAt = s.sentAt
		}
		if s.flags&fpStart != 0 {
			break
		}
		begin--
	}
	a.at(end).flags |= fpDone
	return frameDone{ok: true, sentAt: sentAt}
}
