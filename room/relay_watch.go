package room

import "time"

// Relays whose media stops on the way. A relay can stay connected (ICE
// consent answered, RTCP flowing) while its packets no longer arrive: the
// edge's viewers freeze and nothing ever fails. The origin's sender
// reports say how many packets it sent on each relayed track
// (sfu.Publisher.RelayProgress); the edge compares them with what it took
// in, every relayWatchEvery. A relay that got less than a quarter of what
// its origin reported sending, over at least relayWatchMin packets, in two
// checks in a row, is dropped and asked for again at once, as a relay
// found silent after a stall is (relay_stall.go); its copies and their
// viewers stay and are re-anchored to the new relay's tracks. A silent
// broadcaster (a paused camera, a muted track) is not mistaken for it: the
// origin's counts stop too.
//
// A relay trunk (relay_trunk.go) is watched as one: whole, over every
// room's tracks on it, and opened again when its media is lost.
//
// A relay connection none of whose tracks has arrived relayNothingAfter
// after it was asked for is made again too: its origin's reports cannot
// tell anything (a track is known to the edge from its first packet), and
// a relay that set up in a second on the slowest path has not delivered a
// packet in ten. Seen once in a test's set-up: a relay served, connected
// on both sides for two minutes, and not one packet.

// relayWatchEvery is how often the relays are checked: the origin reports
// every second.
const relayWatchEvery = 2 * time.Second

// relayNothingAfter is how long a relay may go without any of its tracks
// arriving.
const relayNothingAfter = 10 * time.Second

// relayWatchMin is the fewest packets the origin must report sending
// between two checks for a relay to be judged (a second of audio is 50).
const relayWatchMin = 40

// startRelayWatch starts the loop; stopRelayWatch ends it.
func (m *Manager) startRelayWatch() {
	m.watchStop, m.watchDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(m.watchDone)
		tick := time.NewTicker(relayWatchEvery)
		defer tick.Stop()
		for {
			select {
			case <-m.watchStop:
				return
			case <-tick.C:
			}
			m.watchRelays()
		}
	}()
}

func (m *Manager) stopRelayWatch() {
	if m.watchStop != nil {
		close(m.watchStop)
		<-m.watchDone
		m.watchStop = nil
	}
}

// watchRelays checks each relay connection of the node once.
func (m *Manager) watchRelays() {
	if m.isDraining() {
		return
	}
	var relays []*edgeRelay
	trunks := map[*edgeTrunk]bool{}
	for _, r := range m.Rooms() {
		r.mu.Lock()
		for _, er := range r.relay.relays {
			switch {
			case er.pub != nil:
				relays = append(relays, er)
			case er.trunk != nil:
				trunks[er.trunk] = true
			}
		}
		r.mu.Unlock()
	}
	for _, er := range relays {
		er.mu.Lock()
		nothing := er.arrived == 0 && !er.closed && time.Since(er.since) > relayNothingAfter
		er.mu.Unlock()
		if nothing || lost(&er.watchStrikes, er.pub.RelayProgress) {
			er.mediaLost()
		}
	}
	for et := range trunks {
		select {
		case <-et.ready:
		default:
			continue // being set up
		}
		if et.in != nil && lost(&et.watchStrikes, et.in.RelayProgress) {
			et.mediaLost()
		}
	}
}

// lost reads one connection's progress and counts the checks in a row
// that found its media lost in strikes; it reports whether this one is
// the second.
func lost(strikes *int, progress func() (reported, arrived uint64)) bool {
	reported, arrived := progress()
	if reported < relayWatchMin || arrived >= reported/4 {
		*strikes = 0
		return false
	}
	*strikes++
	if *strikes < 2 {
		return false
	}
	*strikes = 0
	return true
}

// mediaLost drops a relay whose packets stopped arriving while its origin
// reports sending them (or that never delivered), and asks for its tracks
// again at once.
func (er *edgeRelay) mediaLost() {
	er.redial(&er.r.m.relaysMediaLost, "relay media lost on the way: its origin reports sending, this node takes in almost nothing; asking again")
}

// mediaLost opens again a trunk whose packets stopped arriving while its
// origin reports sending them; every room on it asks again at once.
func (et *edgeTrunk) mediaLost() {
	et.redial(&et.m.relaysMediaLost, "relay trunk media lost on the way: its origin reports sending, this node takes in almost nothing; opening it again", "media lost on the way")
}
