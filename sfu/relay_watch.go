package sfu

import (
	"github.com/pion/rtcp"
)

// Watching a relay. An origin sends each relay's tracks a sender report
// every second (senderreport.go) with how many packets it has sent on
// each; the reports travel Pion's path, the packets the lean path
// (lean.go). An edge that takes in far fewer packets than its origin says
// it sent is losing the relay's media on the way, whatever the cause, while
// the connection itself (ICE consent, RTCP) stays up and would never be
// declared failed: its viewers would stay frozen. A broadcaster who is
// silent (a paused camera) is not mistaken for it: the reported count
// stops too.

// watched returns t when p is a relay (its RTCP is read for the origin's
// reports), else nil.
func (p *Publisher) watched(t *Track) *Track {
	if !p.relay {
		return nil
	}
	return t
}

// noteReports keeps the packet count of the origin's sender report about t
// found in one RTCP datagram (once a second: parsing it costs nothing that
// matters).
func (t *Track) noteReports(b []byte) {
	pkts, err := rtcp.Unmarshal(b)
	if err != nil {
		return
	}
	for _, p := range pkts {
		if sr, ok := p.(*rtcp.SenderReport); ok && sr.SSRC == t.ssrc {
			t.srPackets.Store(sr.PacketCount)
			t.srSeen.Store(true)
		}
	}
}

// RelayProgress is a relay's progress since the previous call: how many
// packets its origin reported sending, and how many of them arrived (the
// tracks' packets taken in), summed over its tracks. A track counts from
// the second report the edge reads about it, so the first call after a
// track's start reports nothing of it. The room calls it from one
// goroutine.
func (p *Publisher) RelayProgress() (reported, arrived uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.progress == nil {
		p.progress = map[*Track]relayMark{}
	}
	for _, t := range p.tracks {
		if !t.srSeen.Load() {
			continue
		}
		now := relayMark{sr: t.srPackets.Load(), in: t.written.Load()}
		if was, ok := p.progress[t]; ok {
			reported += uint64(now.sr - was.sr) // 32-bit count: wraps
			arrived += now.in - was.in
		}
		p.progress[t] = now
	}
	return reported, arrived
}

// relayMark is one track's counts at the previous RelayProgress.
type relayMark struct {
	sr uint32
	in uint64
}
