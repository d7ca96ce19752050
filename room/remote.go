package room

import (
	"sync"
	"time"
)

// remoteView is a room's view of the other nodes of the cluster: their
// publishers, their tracks (and those of lost origins, kept for a
// republish), their viewer and participant counts. It is the room's own
// state: joins, relays and republishes read it. The cluster machinery
// (pubsub.go) keeps it up to date from the room's channel and the store,
// always through Room.applyRemote, which orders the change with the room's
// own broadcasts. Alone, a node's rooms have an empty view.
//
// Lock order: Room.sendMu, Room.mu, the room's link (pubsub.go), then mu.
type remoteView struct {
	mu           sync.Mutex
	participants map[string]remoteParticipant
	tracks       map[string]RemoteTrack
	lost         map[string]RemoteTrack // tracks of lost origins, kept for a republish (originlost.go)
	timers       []*time.Timer          // the lost tracks' grace periods
	viewers      map[string]int         // node -> its viewer count
	// members is, by node, its participant count, when it is known (from
	// the store or a viewers event that carries it): the join limit reads
	// it rather than the store (remoteParticipants).
	members map[string]int
	// seeded: the other nodes' state was read from the store once.
	seeded bool
	// seen is closed when seeded turns true, or when the view is reset (the
	// room is gone): whoever waits for the first read stops waiting.
	seen chan struct{}
}

func newRemoteView() *remoteView {
	return &remoteView{participants: map[string]remoteParticipant{}, tracks: map[string]RemoteTrack{},
		lost: map[string]RemoteTrack{}, viewers: map[string]int{}, members: map[string]int{}, seen: make(chan struct{})}
}

// markSeeded records that the other nodes' state was read once.
func (v *remoteView) markSeeded() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.seeded {
		v.seeded = true
		close(v.seen)
	}
}

// seededOrGone returns a channel closed once the view was read, or reset.
func (v *remoteView) seededOrGone() <-chan struct{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.seen
}

// reset forgets the view (the room left the cluster's care: it was
// removed) and stops the lost tracks' grace periods.
func (v *remoteView) reset() {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, t := range v.timers {
		t.Stop()
	}
	v.timers = nil
	clear(v.participants)
	clear(v.tracks)
	clear(v.lost)
	clear(v.viewers)
	clear(v.members)
	if !v.seeded {
		close(v.seen) // wake those waiting for a first read that will not come
	}
	v.seeded = false
	v.seen = make(chan struct{})
}

// RemoteTrack is a track published on another node of the cluster.
type RemoteTrack struct {
	Info TrackInfo
	Node string // the origin

	identity string // its publisher's, for a republish elsewhere (originlost.go)
}

// key is the track's republish key (trackKey).
func (t RemoteTrack) key() string {
	return trackKey(t.identity, t.Info.Kind, t.Info.Source, t.Info.Name)
}

type remoteParticipant struct {
	info ParticipantInfo
	node string
}

// remoteViewers is the room's viewer count on other nodes.
func (r *Room) remoteViewers() int {
	v := r.remote
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for _, c := range v.viewers {
		n += c
	}
	return n
}

// RemoteTracks lists the tracks of the room published on other nodes, with
// their origin.
func (r *Room) RemoteTracks() []RemoteTrack {
	v := r.remote
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]RemoteTrack, 0, len(v.tracks))
	for _, t := range v.tracks {
		out = append(out, t)
	}
	return out
}

// withRemoteLocked adds the other nodes' publishers, tracks and viewers to
// a joining participant's state; r.mu is held.
func (r *Room) withRemoteLocked(s State) State {
	v := r.remote
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, p := range v.participants {
		s.Participants = append(s.Participants, p.info)
	}
	for _, t := range v.tracks {
		s.Tracks = append(s.Tracks, t.Info)
	}
	for _, c := range v.viewers {
		s.Viewers += c
	}
	return s
}

// remoteIdentity is the identity of the participant id on another node.
func (r *Room) remoteIdentity(id string) string {
	v := r.remote
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.participants[id].info.Identity
}

// forgetRemoteLocked drops id from the room's view of other nodes: the
// track is this node's now. r.mu is held.
func (r *Room) forgetRemoteLocked(id string) {
	v := r.remote
	v.mu.Lock()
	delete(v.tracks, id)
	delete(v.lost, id)
	v.mu.Unlock()
}

// isLost reports whether id is a track of a lost origin, kept for its
// broadcaster's return.
func (r *Room) isLost(id string) bool {
	v := r.remote
	v.mu.Lock()
	defer v.mu.Unlock()
	_, ok := v.lost[id]
	return ok
}

// remoteSeeded reports whether the room has read the other nodes' state
// once.
func (r *Room) remoteSeeded() bool {
	v := r.remote
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.seeded
}
