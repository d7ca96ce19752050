package room

import (
	"sync/atomic"
	"time"
)

// Observer is told what happens on this node: rooms served and no longer
// served, participants joining and leaving, tracks published and
// unpublished, moderation, the drain. The webhooks (signaling/webhook)
// are its user. Observe is called on the room's own paths, in the order
// things happened in each room, and must not block: it queues.
type Observer interface {
	Observe(h Happening)
}

// HappeningKind says what a Happening is.
type HappeningKind int

// The kinds of Happening.
const (
	// RoomServed: this node serves the room from now on (its first
	// participant here joined).
	RoomServed HappeningKind = iota + 1
	// RoomUnserved: the room is gone from this node (empty past
	// room.empty_timeout).
	RoomUnserved
	// ParticipantJoinedHere and ParticipantLeftHere: a participant of this
	// node (not another node's relay).
	ParticipantJoinedHere
	ParticipantLeftHere
	// TrackPublishedHere and TrackUnpublishedHere: a track this node is
	// the origin of (not a relayed copy). A track republished within the
	// republish grace is not unpublished in between.
	TrackPublishedHere
	TrackUnpublishedHere
	// ParticipantRemovedHere: moderation removed a participant of this
	// node; Reason says why.
	ParticipantRemovedHere
	// TrackMutedHere: moderation muted (or, with Muted false, unmuted) a
	// track this node is the origin of.
	TrackMutedHere
	// NodeDrainingHere: this node began to drain.
	NodeDrainingHere
)

// Happening is one thing that happened on this node.
type Happening struct {
	Kind HappeningKind
	At   time.Time
	// Room is the room's name; "" for NodeDrainingHere.
	Room string
	// Participant is the participant of a participant happening, and the
	// owner of a track's (ID, Identity, Name, Publisher).
	Participant ParticipantRecord
	// Track is the track of a track happening.
	Track TrackInfo
	// Reason is why a participant was removed.
	Reason string
	// Muted is a TrackMutedHere's new state.
	Muted bool
}

// observerSlot holds a Manager's Observer (Manager.SetObserver).
type observerSlot struct{ o atomic.Pointer[Observer] }

// SetObserver makes o the Manager's Observer from now on (nil: none).
func (m *Manager) SetObserver(o Observer) {
	if o == nil {
		m.observer.o.Store(nil)
		return
	}
	m.observer.o.Store(&o)
}

// observe tells the Observer, if there is one.
func (m *Manager) observe(h Happening) {
	o := m.observer.o.Load()
	if o == nil {
		return
	}
	if h.At.IsZero() {
		h.At = time.Now()
	}
	(*o).Observe(h)
}

// observeParticipant tells the Observer of a participant's happening; a
// relay (another node's) is not a participant of the room.
func (r *Room) observeParticipant(kind HappeningKind, p *Participant, reason string) {
	if p.spec.Relay {
		return
	}
	r.m.observe(Happening{Kind: kind, Room: r.name, Reason: reason, Participant: ParticipantRecord{
		ID: p.id, Identity: p.spec.Identity, Name: p.spec.Name, Publisher: p.spec.Publish, Node: r.m.opt.NodeID,
	}})
}

// observeTrack tells the Observer of a track's happening, with its owner.
func (r *Room) observeTrack(kind HappeningKind, t TrackInfo, muted bool) {
	if r.m.observer.o.Load() == nil {
		return
	}
	owner := ParticipantRecord{ID: t.ParticipantID, Node: r.m.opt.NodeID}
	r.mu.Lock()
	if p := r.participants[t.ParticipantID]; p != nil {
		owner.Identity, owner.Name, owner.Publisher = p.spec.Identity, p.spec.Name, p.spec.Publish
	}
	r.mu.Unlock()
	r.m.observe(Happening{Kind: kind, Room: r.name, Track: t, Participant: owner, Muted: muted})
}
