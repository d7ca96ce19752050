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
	// gone are the nodes declared lost (RemoteNodeLost) and not seen back
	// since (RemoteNodeBack): the store's records of theirs are stale.
	gone    map[string]bool
	timers  []*time.Timer  // the lost tracks' grace periods
	viewers map[string]int // node -> its viewer count
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
		lost: map[string]RemoteTrack{}, gone: map[string]bool{}, viewers: map[string]int{}, members: map[string]int{}, seen: make(chan struct{})}
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
	clear(v.gone)
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

// shareCluster passes events this node just delivered to its own clients
// to the cluster, for the other nodes' clients (called under sendMu, so
// they leave in the room's order).
func (r *Room) shareCluster(evs ...Event) {
	if c := r.m.cluster; c != nil {
		c.Share(r, evs...)
	}
}

// countsChanged tells the cluster that the room's viewer or participant
// count on this node changed.
func (r *Room) countsChanged() {
	if c := r.m.cluster; c != nil {
		c.CountsChanged(r)
	}
}

// remove marks the room removed from the node: the cluster's news of it are
// ignored from now on, and its view of the other nodes is forgotten.
func (r *Room) remove() {
	r.mu.Lock()
	r.gone = true
	r.mu.Unlock()
	r.remote.reset()
}

// applyRemote changes the room's view of the other nodes with f and
// delivers the events f returns to the room's participants, as one
// broadcast of the room: under sendMu, so they are ordered with the room's
// own, and with the change made under mu, so a participant joining
// meanwhile either finds it in its joined state or gets its events, never
// both nor neither. When f reports that the viewer counts changed, a new
// count is scheduled. It reports false, doing nothing, once the room was
// removed.
func (r *Room) applyRemote(f func(v *remoteView) ([]Event, bool)) bool {
	r.sendMu.Lock()
	r.mu.Lock()
	if r.gone {
		r.mu.Unlock()
		r.sendMu.Unlock()
		return false
	}
	v := r.remote
	v.mu.Lock()
	events, viewers := f(v)
	v.mu.Unlock()
	r.tracksChangedLocked() // another node's tracks may have come or gone
	var sinks []EventSink
	if len(events) > 0 {
		sinks = r.sinksLocked(nil)
	}
	r.mu.Unlock()
	deliver(sinks, events...)
	r.sendMu.Unlock()
	if viewers {
		r.viewersChanged()
	}
	return true
}

// The inbound side of the cluster port: what the cluster learnt of the
// other nodes of the room, from the room's channel or the store. Each
// keeps the room's view of them and tells the room's clients what
// changed, as one broadcast of the room.

// RemoteJoined: a participant joined on node p.Node and announced itself.
func (r *Room) RemoteJoined(p ParticipantRecord) {
	r.applyRemote(func(v *remoteView) ([]Event, bool) {
		info := ParticipantInfo{ID: p.ID, Identity: p.Identity, Name: p.Name, Publisher: p.Publisher}
		_, known := v.participants[p.ID]
		v.participants[p.ID] = remoteParticipant{info: info, node: p.Node}
		if !known {
			return []Event{ParticipantJoined{Participant: info}}, false
		}
		return nil, false
	})
}

// RemoteLeft: the participant id of another node left.
func (r *Room) RemoteLeft(id string) {
	r.applyRemote(func(v *remoteView) ([]Event, bool) {
		if _, ok := v.participants[id]; ok {
			delete(v.participants, id)
			return []Event{ParticipantLeft{ParticipantID: id}}, false
		}
		return nil, false
	})
}

// RemotePublished: node t.Node (the origin) published t, or published it
// again (a broadcaster who moved there). The room's relays follow.
func (r *Room) RemotePublished(t TrackRecord) {
	applied := r.applyRemote(func(v *remoteView) ([]Event, bool) {
		if r.publishedHereLocked(t.ID) {
			return nil, false // this node took the track over: it is the origin now
		}
		info := t.Info()
		old, known := v.tracks[t.ID]
		_, wasLost := v.lost[t.ID]
		delete(v.lost, t.ID)
		v.tracks[t.ID] = RemoteTrack{Info: info, Node: t.Node, identity: v.participants[t.ParticipantID].info.Identity}
		if !known || wasLost || old.Info.ParticipantID != info.ParticipantID {
			return []Event{TrackPublished{Track: info}}, false // new, or republished by another participant
		}
		return nil, false
	})
	if applied {
		r.demandRelays(false)
	}
}

// publishedHereLocked reports whether this node publishes the track id
// itself. r.mu is held.
func (r *Room) publishedHereLocked(id string) bool {
	e := r.tracks[id]
	return e != nil && e.relay == nil
}

// RemoteUnpublished: node ended the track id of participant owner. Only its
// origin unpublishes a track: a node the broadcaster left for another one
// may end its old copy after the new origin announced it.
func (r *Room) RemoteUnpublished(node, id, owner string) {
	ended := false
	r.applyRemote(func(v *remoteView) ([]Event, bool) {
		if t, ok := v.tracks[id]; ok && t.Node == node {
			delete(v.tracks, id)
			ended = true
			return []Event{TrackUnpublished{TrackID: id, ParticipantID: owner}}, false
		}
		return nil, false
	})
	if ended {
		r.dropRemoteTrack(id)
	}
}

// RemoteCounts: node has viewers viewers of the room and, when it says,
// members participants (the join limit reads them: RemoteMembers).
func (r *Room) RemoteCounts(node string, viewers int, members *int) {
	r.applyRemote(func(v *remoteView) ([]Event, bool) {
		v.viewers[node] = viewers
		if members != nil {
			v.members[node] = *members
		} else {
			delete(v.members, node) // a node that does not say: read the store
		}
		return nil, true
	})
}

// RemoteMessage: a chat message or a reaction sent on another node.
func (r *Room) RemoteMessage(ev Event) {
	switch ev.(type) {
	case Chat, Reaction:
	default:
		return
	}
	r.applyRemote(func(*remoteView) ([]Event, bool) { return []Event{ev}, false })
}

// RemoteState brings the room's view of the other nodes in line with st,
// the room as the shared state holds it, and tells the room's clients what
// changed: publishers (those with a track: a participant is announced with
// its first track) and tracks that are new, and those gone from a node that
// still has a part in the room. (A node with no part at all is left to
// RemoteNodeLost: right after a Redis restart a live node may not have
// re-registered yet.) The cluster calls it when the room is linked and
// again after an outage, when events may have been lost.
func (r *Room) RemoteState(st RoomState) {
	self := r.m.opt.NodeID
	present := map[string]bool{}
	for node := range st.Viewers {
		present[node] = node != self
	}
	records := map[string]ParticipantRecord{}
	for _, p := range st.Participants {
		if p.Node != self {
			records[p.ID] = p
		}
	}
	applied := r.applyRemote(func(v *remoteView) ([]Event, bool) {
		var joined, published, unpublished, left []Event
		seenT := map[string]bool{}
		for _, t := range st.Tracks {
			if t.Node == self || r.publishedHereLocked(t.ID) {
				continue // this node's own, or taken over from a node whose record has not expired yet
			}
			seenT[t.ID] = true
			if lost, ok := v.lost[t.ID]; ok && lost.Node == t.Node {
				if v.gone[t.Node] {
					continue // the lost origin's record, not expired yet
				}
				// Its origin is back (RemoteNodeBack): the track is
				// restored, published again to the clients told it was
				// lost, and relayed again below.
				delete(v.lost, t.ID)
			}
			if p, ok := records[t.ParticipantID]; ok {
				if _, known := v.participants[p.ID]; !known {
					info := ParticipantInfo{ID: p.ID, Identity: p.Identity, Name: p.Name, Publisher: p.Publisher}
					v.participants[p.ID] = remoteParticipant{info: info, node: p.Node}
					joined = append(joined, ParticipantJoined{Participant: info})
				}
			}
			info := t.Info()
			if old, ok := v.tracks[t.ID]; !ok || old.Info.ParticipantID != info.ParticipantID {
				published = append(published, TrackPublished{Track: info})
			}
			v.tracks[t.ID] = RemoteTrack{Info: info, Node: t.Node, identity: records[t.ParticipantID].Identity}
		}
		for id, t := range v.tracks {
			if present[t.Node] && !seenT[id] {
				delete(v.tracks, id)
				unpublished = append(unpublished, TrackUnpublished{TrackID: id, ParticipantID: t.Info.ParticipantID})
			}
		}
		for id, p := range v.participants {
			if _, ok := records[id]; present[p.node] && !ok {
				delete(v.participants, id)
				left = append(left, ParticipantLeft{ParticipantID: id})
			}
		}
		members := map[string]int{}
		for _, p := range st.Participants {
			members[p.Node]++
		}
		for node, n := range st.Viewers {
			if node != self {
				v.viewers[node] = n
				v.members[node] = members[node]
			}
		}
		// In the order one node would send them.
		return append(append(append(joined, published...), unpublished...), left...), true
	})
	if !applied {
		return
	}
	// Relays follow the origin's tracks (relay.go).
	for _, t := range r.relayedIDs() {
		if !r.isRemoteTrack(t) {
			r.dropRemoteTrack(t)
		}
	}
	r.demandRelays(false)
}

// RemoteNodeBack: node, declared lost before (RemoteNodeLost), is alive
// again (a pause, a stall, a partition that healed). Its records in the
// shared state are believed again: the next RemoteState restores its
// tracks, kept or already ended, and the room relays them again.
func (r *Room) RemoteNodeBack(node string) {
	v := r.remote
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.gone, node)
}

// RemoteRead records that the other nodes' state was read once (after
// the first RemoteState): a WHEP player waiting for it stops waiting.
func (r *Room) RemoteRead() { r.remote.markSeeded() }

// RemoteReadDone reports whether the other nodes' state was read once.
func (r *Room) RemoteReadDone() bool { return r.remoteSeeded() }

// RemoteNodes lists the other nodes the room knows of: the origins of its
// tracks, the nodes of its publishers and those that count viewers.
func (r *Room) RemoteNodes() []string {
	v := r.remote
	v.mu.Lock()
	defer v.mu.Unlock()
	known := map[string]bool{}
	for _, t := range v.tracks {
		known[t.Node] = true
	}
	for _, p := range v.participants {
		known[p.node] = true
	}
	for node := range v.viewers {
		known[node] = true
	}
	out := make([]string, 0, len(known))
	for node := range known {
		out = append(out, node)
	}
	return out
}

// RemoteMembers returns the participants of the room on other nodes as the
// room knows them, and false when it cannot tell (the other nodes were not
// read yet, or a node has not said).
func (r *Room) RemoteMembers() (int, bool) {
	v := r.remote
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.seeded {
		return 0, false
	}
	n := 0
	for node := range v.viewers {
		k, ok := v.members[node]
		if !ok {
			return 0, false
		}
		n += k
	}
	return n, true
}

// LocalCounts returns the room's viewers and participants on this node
// (another node's relay is not one).
func (r *Room) LocalCounts() (viewers, members int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.participants {
		if !p.spec.Relay {
			members++
		}
	}
	return r.viewers, members
}

// LocalPart is this node's part of a room, as the shared state holds it.
type LocalPart struct {
	Participants []ParticipantRecord
	Tracks       []TrackRecord
	Viewers      int
}

// LocalPart returns this node's part of the room: its participants (not
// other nodes' relays), the tracks it publishes (not relayed copies), its
// viewer count.
func (r *Room) LocalPart() LocalPart {
	node := r.m.opt.NodeID
	r.mu.Lock()
	defer r.mu.Unlock()
	st := LocalPart{Viewers: r.viewers}
	for _, p := range r.participants {
		if p.spec.Relay {
			continue
		}
		st.Participants = append(st.Participants, p.record(node))
	}
	for _, t := range r.tracks {
		if t.relay == nil {
			st.Tracks = append(st.Tracks, t.info.Record(node))
		}
	}
	return st
}

// Origins lists the ids of the tracks this node publishes in the room.
func (r *Room) Origins() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.tracks))
	for id, t := range r.tracks {
		if t.relay == nil {
			out = append(out, id)
		}
	}
	return out
}
