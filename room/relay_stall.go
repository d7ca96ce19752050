package room

import "time"

// Relays after a stall. When this node was stopped (SIGSTOP, a VM pause, a
// long GC) for longer than the origin waits for a silent relay (15 s, the
// media plane's ICE timeouts), the origin has ended the relay meanwhile.
// The edge's side cannot tell: what the origin sent before ending it, its
// goodbye included, waited in a socket that overflowed, and the edge's own
// ICE would take another 15 s of silence to give up, while its viewers,
// still connected, wait. So after each stall the edge looks at its relays:
// a relay that takes in no packet within relayProbe of the return is
// dropped as lost and asked for again at once; its copies and their
// viewers stay, and are re-anchored to the new relay's tracks (addRelayed).
//
// A relay whose tracks are all silent for a reason of their own (a muted
// broadcaster) is asked for again once, needlessly; that costs one relay
// set-up per stall.

// relaySettle is how long after the return the probe starts: what waited
// in the sockets is read first, and must not count as live.
const relaySettle = 500 * time.Millisecond

// relayProbe is how long a live relay may go without a packet: video comes
// every few tens of milliseconds, audio every 20 ms.
const relayProbe = time.Second

// probeRelaysAfterStall checks every relay of the node's rooms.
func (m *Manager) probeRelaysAfterStall(late time.Duration) {
	if m.isDraining() {
		return
	}
	var relays []*edgeRelay
	for _, r := range m.Rooms() {
		r.mu.Lock()
		for _, er := range r.relay.relays {
			relays = append(relays, er)
		}
		r.mu.Unlock()
	}
	if len(relays) == 0 {
		return
	}
	m.log.Info("checking relays after a stall", "relays", len(relays), "late", late.Round(time.Millisecond))
	time.AfterFunc(relaySettle, func() {
		first := make([]uint64, len(relays))
		for i, er := range relays {
			first[i] = er.pub.PacketsIn()
		}
		time.AfterFunc(relayProbe, func() {
			for i, er := range relays {
				if er.pub.PacketsIn() == first[i] {
					er.silentAfterStall()
				}
			}
		})
	})
}

// silentAfterStall drops a relay found silent after a stall and asks for
// its tracks again at once (not after relayRetry: the origin is up, only
// this relay is gone).
func (er *edgeRelay) silentAfterStall() {
	er.mu.Lock()
	closed := er.closed
	er.mu.Unlock()
	if closed {
		return
	}
	r := er.r
	r.m.relaysSilent.Add(1)
	r.m.log.Warn("relay silent after a stall: asking its origin again", "room", r.name, "origin", er.origin)
	er.fail()
	if !r.m.isDraining() {
		r.demandRelays(false)
	}
}
