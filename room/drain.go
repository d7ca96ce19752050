package room

import (
	"context"
	"sync"
	"time"
)

// A node that drains in a cluster (SIGTERM) hands its audience over before
// it removes anyone:
//
//  1. Every client that can follow one (a WebSocket client: its sink is a
//     Redirector) gets a Redirect to another live node, the least loaded of
//     this node's region, else of any region. A client joins there and then
//     leaves here; a broadcaster publishes there first, which takes over
//     the copies other nodes hold of its tracks (originlost.go), so their
//     viewers switch to the new origin without a gap.
//     Every WHEP viewer (a participant that only subscribes, whose client
//     cannot follow a Redirect) is ended at once: its player gets a DTLS
//     close_notify (sfu/closenotify.go) and POSTs again, and the node
//     answers a new WHIP or WHEP POST with 307 Temporary Redirect to the
//     same path on that node (DrainTarget), so the player plays there
//     within a round of signalling. Without such a node the viewers are
//     ended with everyone else in step 4, which then comes at once.
//  2. The node waits, at most half the time it has left, until those
//     clients have gone and no other node pulls a relay from it any more.
//  3. It tells its rooms' other nodes it is gone (a node_gone event): the
//     tracks still published here are lost, kept elsewhere for the
//     republish grace, so a WHIP broadcaster (which cannot be redirected)
//     that reconnects to another node holding a copy keeps its audience.
//  4. Everyone left is removed (Closed with ErrDraining).

// Redirector is implemented by event sinks whose client can be sent to
// another node (Redirect) and join there.
type Redirector interface {
	CanRedirect() bool
}

// handOverPoll is how often the hand-over checks whether it is done.
const handOverPoll = 50 * time.Millisecond

func (m *Manager) handOver(ctx context.Context) {
	// Other nodes stop sending clients and relays here at once.
	m.cluster.Announce()
	wait := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		wait = time.Until(dl) / 2
	}
	hctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	target := m.drainTarget(hctx)
	m.drainTo.Store(&target)
	redirected, ended := 0, 0
	var endedAt time.Time
	if target != "" {
		var viewers []*Participant
		for _, r := range m.Rooms() {
			for _, p := range r.list() {
				if rd, ok := p.sink.(Redirector); ok && rd.CanRedirect() {
					p.sink.Event(Redirect{URL: target})
					redirected++
				} else if whepViewer(p) {
					viewers = append(viewers, p)
				}
			}
		}
		ended = len(viewers)
		var wg sync.WaitGroup
		for _, p := range viewers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.sink.Event(Closed{Reason: ErrDraining})
				p.Leave()
			}()
		}
		wg.Wait()
		endedAt = time.Now()
	}
	m.log.Info("draining: handing over", "to", target, "redirected", redirected, "whep_ended", ended, "wait", wait)
	start := time.Now()
	for !m.handedOver(target != "") {
		select {
		case <-hctx.Done():
			m.log.Warn("draining: hand-over not finished in time", "waited", time.Since(start))
			m.handOverTimeouts.Add(1)
			m.cluster.Gone()
			return
		case <-time.After(handOverPoll):
		}
	}
	if ended > 0 {
		// The ended WHEP players POST again here, and are sent on by a
		// 307 (DrainTarget): the node answers them for a while before it
		// goes, or they would find nothing listening. Measured: a real
		// node had handed over 150 ms after SIGTERM and exited, before its
		// player's new POST arrived.
		select {
		case <-hctx.Done():
		case <-time.After(time.Until(endedAt.Add(whepRedirectWindow))):
		}
	}
	m.log.Info("draining: handed over", "took", time.Since(start))
	m.cluster.Gone()
}

// whepRedirectWindow is how long a draining node keeps answering after it
// ended its WHEP viewers' sessions, so that their new POSTs get the 307 to
// another node: a player POSTs again as soon as it sees its session end
// (within a second on a loaded machine).
const whepRedirectWindow = 2 * time.Second

// DrainTarget returns the public URL of the node a draining node sends
// new WHIP and WHEP sessions to (307), or "" when it is not draining, has
// not chosen one yet, or knows no other live node.
func (m *Manager) DrainTarget() string {
	if t := m.drainTo.Load(); t != nil {
		return *t
	}
	return ""
}

// whepViewer reports whether p only watches, through a client that cannot
// follow a Redirect (a WHEP player): it moves by POSTing again.
func whepViewer(p *Participant) bool {
	if p.spec.Relay || p.spec.Publish || !p.spec.Subscribe {
		return false
	}
	rd, ok := p.sink.(Redirector)
	return !ok || !rd.CanRedirect()
}

// handedOver reports whether no other node pulls a relay from here and,
// when clients were redirected, none of them is still here.
func (m *Manager) handedOver(redirected bool) bool {
	for _, r := range m.Rooms() {
		for _, p := range r.list() {
			if p.spec.Relay {
				return false
			}
			if rd, ok := p.sink.(Redirector); redirected && ok && rd.CanRedirect() {
				return false
			}
		}
	}
	return true
}

// drainTarget returns the public URL of the node to send clients to, or ""
// when no other node is alive (or the registry cannot be read).
func (m *Manager) drainTarget(ctx context.Context) string {
	u, err := m.leastLoaded(ctx, m.Region(), false) // admission.go
	if err != nil {
		m.log.Warn("draining: cannot read the registry; clients are not redirected", "err", err)
	}
	return u
}
