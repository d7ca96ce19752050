package signaling

import (
	"sync"

	"github.com/halobuzz/live/room"
)

// wsPending is a WebSocket client's place among the pending sessions
// (pending.go). The client is pending from the server's offer on its
// subscriber connection until that connection is up, fails or the socket
// ends. A subscribe is refused (too_many_pending) when it would start a
// pending connection over the caps; a subscription that offers nothing yet
// (a room without a broadcast) holds no place, and the offer that comes
// when the broadcast starts is counted without being refused.
type wsPending struct {
	mu      sync.Mutex
	slot    *pendingSlot // held now; nil when none
	offered bool         // an offer went out on the current subscriber connection
	up      bool         // the current subscriber connection is up
	ended   bool         // the session ended: nothing is counted any more
	room    string       // the client's room, set by its first subscribe
}

// admitSubscribe runs a subscribe (or the join's automatic subscription)
// within the caps: a client with no connection up or offered takes a slot
// before it, and gives it back after it when no offer went out. It returns
// too_many_pending, and does not run subscribe, when a cap is reached.
func (c *wsClient) admitSubscribe(subscribe func() error) error {
	k := &c.pend
	k.mu.Lock()
	k.room = c.p.Room().Name()
	var mine *pendingSlot
	if k.slot == nil && !k.up && !k.offered && !k.ended {
		slot, e := c.s.pending.admit(c.s.pendingKey(c.ip), k.room, false)
		if e != nil {
			k.mu.Unlock()
			return e
		}
		k.slot, mine = slot, slot
	}
	k.mu.Unlock()
	err := subscribe()
	if mine != nil {
		k.mu.Lock()
		if k.slot == mine && !k.offered {
			k.slot = nil
			mine.release()
		}
		k.mu.Unlock()
	}
	return err
}

// pendingEvent follows the subscriber connection through the room's events
// to the client: offered, up, failed, or the session closed.
func (c *wsClient) pendingEvent(ev room.Event) {
	k := &c.pend
	k.mu.Lock()
	defer k.mu.Unlock()
	switch ev := ev.(type) {
	case room.Offer:
		k.offered = true
		if k.slot == nil && !k.up && !k.ended && k.room != "" {
			k.slot, _ = c.s.pending.admit(c.s.pendingKey(c.ip), k.room, true)
		}
	case room.MediaConnected:
		if ev.Target == "subscriber" {
			k.up = true
			k.dropLocked()
		}
	case room.MediaFailed:
		if ev.Target == "subscriber" {
			// The connection is gone; a new subscribe starts another.
			k.up, k.offered = false, false
			k.dropLocked()
		}
	case room.Closed:
		k.ended = true
		k.dropLocked()
	}
}

// endPending gives back the client's slot when its socket ends.
func (c *wsClient) endPending() {
	c.pend.mu.Lock()
	defer c.pend.mu.Unlock()
	c.pend.ended = true
	c.pend.dropLocked()
}

func (k *wsPending) dropLocked() {
	if k.slot != nil {
		k.slot.release()
		k.slot = nil
	}
}
