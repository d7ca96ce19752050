package room

import (
	"sync/atomic"
	"time"
)

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
// With relay trunks the trunk is checked, not each room's relay on it: a
// silent trunk is opened again, and every room on it asks again at once.
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

// stallProbe is one connection checked after a stall: a room's own relay
// connection, or a trunk with every room's relays from its origin.
type stallProbe struct {
	packets func() uint64
	silent  func()
}

// probeRelaysAfterStall checks every relay connection of the node.
func (m *Manager) probeRelaysAfterStall(late time.Duration) {
	if m.isDraining() {
		return
	}
	var probes []stallProbe
	trunks := map[*edgeTrunk]bool{}
	for _, r := range m.Rooms() {
		r.mu.Lock()
		for _, er := range r.relay.relays {
			switch {
			case er.pub != nil:
				probes = append(probes, stallProbe{packets: er.pub.PacketsIn, silent: er.silentAfterStall})
			case er.trunk != nil && !trunks[er.trunk]:
				trunks[er.trunk] = true
				et := er.trunk
				probes = append(probes, stallProbe{packets: et.packetsIn, silent: et.silentAfterStall})
			}
		}
		r.mu.Unlock()
	}
	if len(probes) == 0 {
		return
	}
	m.log.Info("checking relays after a stall", "connections", len(probes), "late", late.Round(time.Millisecond))
	time.AfterFunc(relaySettle, func() {
		first := make([]uint64, len(probes))
		for i, p := range probes {
			first[i] = p.packets()
		}
		time.AfterFunc(relayProbe, func() {
			for i, p := range probes {
				if p.packets() == first[i] {
					p.silent()
				}
			}
		})
	})
}

// silentAfterStall drops a relay found silent after a stall and asks for
// its tracks again at once (not after relayRetry: the origin is up, only
// this relay is gone).
func (er *edgeRelay) silentAfterStall() {
	er.redial(&er.r.m.relaysSilent, "relay silent after a stall: asking its origin again")
}

// redial drops a relay found broken while its origin lives, counts it in
// counter, logs why, and asks for its tracks again at once.
func (er *edgeRelay) redial(counter *atomic.Uint64, why string) {
	er.mu.Lock()
	closed := er.closed
	er.mu.Unlock()
	if closed {
		return
	}
	r := er.r
	counter.Add(1)
	r.m.log.Warn(why, "room", r.name, "origin", er.origin)
	er.fail()
	if !r.m.isDraining() {
		r.demandRelays(false)
	}
}

// silentAfterStall drops a trunk found silent after a stall; every room
// whose relays rode on it asks again at once, on a new trunk.
func (et *edgeTrunk) silentAfterStall() {
	et.redial(&et.m.relaysSilent, "relay trunk silent after a stall: opening it again", "silent after a stall")
}

// redial opens again a trunk found broken while its origin lives, counts
// it in counter and logs why; every room on it asks again at once.
func (et *edgeTrunk) redial(counter *atomic.Uint64, log, why string) {
	et.mu.Lock()
	dead := et.dead
	et.mu.Unlock()
	if dead {
		return
	}
	counter.Add(1)
	et.m.log.Warn(log, "origin", et.origin)
	et.reopen(why)
}
