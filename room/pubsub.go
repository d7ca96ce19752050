package room

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Cross-node room events. Each node of a room subscribes to the room's
// channel and publishes there what it announces to its own clients
// (shareCluster): publishers announced and leaving, tracks published and
// unpublished, chat and reactions; plus its viewer count (at most once a
// second). A node delivers its own events to its clients directly and
// ignores their echo; other nodes' events reach its clients as broadcasts
// of the room (applyRemote), ordered with the room's own.
//
// Order and exactly-once: a node publishes from its one ordered store
// queue, so its events leave in order; each carries the node's boot id
// (one per process) and a sequence number, and a receiver drops any event
// whose sequence is not above the last it took from that boot. Events
// published while Redis is unreachable are lost (pub/sub keeps nothing); a
// node that subscribes reads the room's state from the store (reconcile),
// again after an outage, and dead nodes' entries are dropped when the
// registry loses them (forgetNodes).

// wireEvent is one cross-node event as it travels on the room's channel.
type wireEvent struct {
	V    int    `json:"v"`
	Node string `json:"node"`
	Boot string `json:"boot"`
	Seq  uint64 `json:"seq"`
	Type string `json:"type"`

	Participant *ParticipantRecord `json:"participant,omitempty"` // as the store holds it, Node its node
	Track       *TrackRecord       `json:"track,omitempty"`       // the record the store holds, Node its origin
	// ID is the participant that left or the track that ended; Owner the
	// participant whose track ended.
	ID      string `json:"id,omitempty"`
	Owner   string `json:"owner,omitempty"`
	Viewers int    `json:"viewers,omitempty"`
	// Participants, on a viewers event, is the sending node's participant
	// count of the room (as its store record counts them); absent from
	// nodes that do not send it.
	Participants *int   `json:"participants,omitempty"`
	Name         string `json:"name,omitempty"`  // chat or reaction sender's name
	Text         string `json:"text,omitempty"`  // chat text
	Emoji        string `json:"emoji,omitempty"` // reaction
}

// Event types on the wire.
const (
	evJoined      = "participant_joined"
	evLeft        = "participant_left"
	evPublished   = "track_published"
	evUnpublished = "track_unpublished"
	evViewers     = "viewers"
	evChat        = "chat"
	evReaction    = "reaction"
	// evNodeGone: the sending node leaves the cluster (it drains): its
	// tracks are lost now, not when its registry entry expires.
	evNodeGone = "node_gone"
)

// Bounds of a cross-node event: what a node accepts from the channel.
const (
	maxWireEvent = 16 << 10
	maxWireField = 256
	maxWireText  = 4096
)

// maxSiblings bounds TrackRecord.Siblings on the wire: more tracks than one publisher
// may send (limits.tracks_per_participant is far below).
const maxSiblings = 64

// errBadEvent is returned by parseWireEvent for anything it refuses.
var errBadEvent = errors.New("room: bad cross-node event")

// parseWireEvent decodes and checks an event read from a room channel. Any
// other node (or anyone with access to Redis) may have written it, so it
// is outside input: bounded, validated, never trusted to be well-formed.
func parseWireEvent(b []byte) (wireEvent, error) {
	var ev wireEvent
	if len(b) > maxWireEvent {
		return ev, fmt.Errorf("%w: %d bytes", errBadEvent, len(b))
	}
	if err := json.Unmarshal(b, &ev); err != nil {
		return ev, fmt.Errorf("%w: %w", errBadEvent, err)
	}
	if ev.V != 1 {
		return ev, fmt.Errorf("%w: version %d", errBadEvent, ev.V)
	}
	fields := []string{ev.Node, ev.Boot, ev.ID, ev.Owner, ev.Name, ev.Emoji}
	if p := ev.Participant; p != nil {
		fields = append(fields, p.ID, p.Identity, p.Name, p.Node)
	}
	if t := ev.Track; t != nil {
		fields = append(fields, t.ID, t.ParticipantID, t.Kind, t.Source, t.Name, t.MID, t.Codec, t.Node)
		if t.Siblings < 0 || t.Siblings > maxSiblings {
			return ev, fmt.Errorf("%w: %d sibling tracks", errBadEvent, t.Siblings)
		}
		if len(t.Layers) > 3 {
			return ev, fmt.Errorf("%w: %d simulcast layers", errBadEvent, len(t.Layers))
		}
		for _, l := range t.Layers {
			if l == "" || len(l) > 16 || strings.ContainsAny(l, "~.") {
				return ev, fmt.Errorf("%w: bad simulcast layer %q", errBadEvent, l)
			}
		}
	}
	for _, f := range fields {
		if len(f) > maxWireField || !utf8.ValidString(f) {
			return ev, fmt.Errorf("%w: a field is over %d bytes or not UTF-8", errBadEvent, maxWireField)
		}
	}
	if len(ev.Text) > maxWireText || !utf8.ValidString(ev.Text) {
		return ev, fmt.Errorf("%w: chat text over %d bytes or not UTF-8", errBadEvent, maxWireText)
	}
	if ev.Node == "" || ev.Boot == "" || ev.Seq == 0 {
		return ev, fmt.Errorf("%w: missing node, boot or seq", errBadEvent)
	}
	ok := false
	switch ev.Type {
	case evJoined:
		ok = ev.Participant != nil && ev.Participant.ID != ""
	case evLeft:
		ok = ev.ID != ""
	case evPublished:
		ok = ev.Track != nil && ev.Track.ID != "" && ev.Track.ParticipantID != ""
	case evUnpublished:
		ok = ev.ID != "" && ev.Owner != ""
	case evViewers:
		ok = ev.Viewers >= 0 && (ev.Participants == nil || *ev.Participants >= 0)
	case evChat:
		ok = ev.ID != ""
	case evReaction:
		ok = ev.ID != "" && ev.Emoji != ""
	case evNodeGone:
		ok = true
	}
	if !ok {
		return ev, fmt.Errorf("%w: type %q incomplete or unknown", errBadEvent, ev.Type)
	}
	return ev, nil
}

// roomLink is the cluster's side of a room: its subscription to the room's
// channel, what it took from each publisher (sequence numbers), and what it
// last published of the room's counts. The room's view of the other nodes
// that the link keeps up to date is the room's own (Room.remote,
// remote.go).
type roomLink struct {
	mu          sync.Mutex
	cancel      func()
	closed      bool
	sentMembers int               // this node's participant count last published
	lastSeq     map[string]uint64 // boot -> last sequence taken
	sentViewers int               // this node's count last published
	sentAt      time.Time
	pending     bool // a link job is queued
	// reread: read the room once more at the next heartbeat. A channel
	// subscription is confirmed asynchronously, on another connection than
	// the first read: an event published in between is neither read nor
	// received, so the read is repeated once the subscription stands.
	reread bool
}

// link returns r's roomLink, or nil outside a cluster.
func (m *Manager) link(r *Room) *roomLink {
	if !m.opt.Cluster {
		return nil
	}
	c := &m.cluster
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.links[r]
}

// linkRoom subscribes a new room to its channel and reads what other nodes
// hold of it; both through the ordered queue, off the join path.
func (m *Manager) linkRoom(r *Room) {
	if !m.opt.Cluster {
		return
	}
	l := &roomLink{lastSeq: map[string]uint64{}, sentViewers: -1, sentMembers: -1}
	c := &m.cluster
	c.mu.Lock()
	c.links[r] = l
	c.mu.Unlock()
	m.queueLink(r, l)
}

// queueLink queues the job that subscribes l (if it is not yet) and reads
// the room from the store. When it cannot be queued or fails, the next
// heartbeat queues it again (relinkRooms).
func (m *Manager) queueLink(r *Room, l *roomLink) {
	l.mu.Lock()
	l.pending = true
	l.mu.Unlock()
	queued := m.storeWrite(func(ctx context.Context) error {
		l.mu.Lock()
		l.pending = false
		subscribed, closed := l.cancel != nil, l.closed
		l.mu.Unlock()
		if closed {
			return nil
		}
		if !subscribed {
			cancel, err := m.store.Subscribe(r.name, func(b []byte) { m.receive(r, l, b) })
			if err != nil {
				return err
			}
			l.mu.Lock()
			if l.closed {
				l.mu.Unlock()
				cancel()
				return nil
			}
			l.cancel = cancel
			l.mu.Unlock()
		}
		st, err := m.store.Room(ctx, r.name)
		if errors.Is(err, ErrNotFound) {
			st, err = RoomState{Name: r.name}, nil
		}
		if err != nil {
			return err
		}
		m.reconcile(r, l, st)
		r.remote.markSeeded()
		l.mu.Lock()
		l.reread = true
		l.mu.Unlock()
		return nil
	})
	if !queued {
		l.mu.Lock()
		l.pending = false
		l.mu.Unlock()
	}
}

// relinkRooms queues the link job again for every room whose subscription
// or first read has not succeeded yet.
func (m *Manager) relinkRooms() {
	links := m.linkedRooms()
	for r, l := range links {
		seeded := r.remoteSeeded()
		l.mu.Lock()
		need := (l.cancel == nil || !seeded) && !l.closed && !l.pending
		reread := !need && l.reread && !l.closed && !l.pending
		l.reread = false
		l.mu.Unlock()
		switch {
		case need:
			m.queueLink(r, l)
		case reread:
			m.reconcileRoom(r, l)
		}
	}
}

// unlinkRoom ends r's subscription (the room was removed).
func (m *Manager) unlinkRoom(r *Room) {
	if !m.opt.Cluster {
		return
	}
	c := &m.cluster
	c.mu.Lock()
	l := c.links[r]
	delete(c.links, r)
	delete(c.remote, r.name)
	c.mu.Unlock()
	if l == nil {
		return
	}
	l.mu.Lock()
	l.closed = true
	cancel := l.cancel
	l.mu.Unlock()
	r.remote.reset() // the room is gone: its view of other nodes with it
	if cancel != nil {
		m.storeWrite(func(context.Context) error { cancel(); return nil })
	}
}

// reconcile brings l in line with st, the room as the store holds it, and
// tells the room's clients what changed on other nodes: publishers (those
// with a track: a participant is announced with its first track) and
// tracks that are new, and those gone from a node that still has a part in
// the room. (A node with no part at all is left to forgetNodes: right
// after a Redis restart a live node may not have re-registered yet.) It
// runs when the room is linked and again after a store outage, when
// events may have been lost.
func (m *Manager) reconcile(r *Room, l *roomLink, st RoomState) {
	self := m.opt.NodeID
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
	r.applyRemote(l, func(v *remoteView) ([]Event, bool) {
		var joined, published, unpublished, left []Event
		seenT := map[string]bool{}
		for _, t := range st.Tracks {
			if t.Node == self {
				continue
			}
			seenT[t.ID] = true
			if lost, ok := v.lost[t.ID]; ok && lost.Node == t.Node {
				continue // the lost origin's record, not expired yet
			}
			if p, ok := records[t.ParticipantID]; ok {
				if _, known := v.participants[p.ID]; !known {
					info := ParticipantInfo{ID: p.ID, Identity: p.Identity, Name: p.Name, Publisher: p.Publisher}
					v.participants[p.ID] = remoteParticipant{info: info, node: p.Node}
					joined = append(joined, ParticipantJoined{Participant: info})
				}
			}
			info := t.info()
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
	// Relays follow the origin's tracks (relay.go).
	for _, t := range r.relayedIDs() {
		if !r.isRemoteTrack(t) {
			r.dropRemoteTrack(t)
		}
	}
	r.demandRelays(false)
}

// reconcileRooms queues a reconcile of every linked room (after an outage).
func (m *Manager) reconcileRooms() {
	for r, l := range m.linkedRooms() {
		m.reconcileRoom(r, l)
	}
}

// reconcileRoom queues a read of r from the store and a reconcile with it.
func (m *Manager) reconcileRoom(r *Room, l *roomLink) {
	m.storeWrite(func(ctx context.Context) error {
		st, err := m.store.Room(ctx, r.name)
		if errors.Is(err, ErrNotFound) {
			st, err = RoomState{Name: r.name}, nil
		}
		if err != nil {
			return err
		}
		m.reconcile(r, l, st)
		return nil
	})
}

// receive applies one event from the room's channel.
func (m *Manager) receive(r *Room, l *roomLink, b []byte) {
	ev, err := parseWireEvent(b)
	if err != nil {
		m.log.Warn("cluster: dropped a bad room event", "room", r.name, "err", err)
		return
	}
	if ev.Node == m.opt.NodeID {
		return // our own echo: delivered locally already
	}
	applied := false
	defer func() {
		if !applied {
			return
		}
		// Relays follow the origin's tracks (relay.go).
		switch ev.Type {
		case evPublished:
			r.demandRelays(false)
		case evUnpublished:
			r.dropRemoteTrack(ev.ID)
		case evNodeGone:
			r.loseOrigin(l, ev.Node)
		}
	}()
	r.applyRemote(l, func(v *remoteView) ([]Event, bool) {
		if ev.Seq <= l.lastSeq[ev.Boot] {
			return nil, false // a duplicate or late event
		}
		l.lastSeq[ev.Boot] = ev.Seq
		switch ev.Type {
		case evNodeGone:
			applied = true
		case evJoined:
			p := ev.Participant
			info := ParticipantInfo{ID: p.ID, Identity: p.Identity, Name: p.Name, Publisher: p.Publisher}
			_, known := v.participants[p.ID]
			v.participants[p.ID] = remoteParticipant{info: info, node: ev.Node}
			if !known {
				return []Event{ParticipantJoined{Participant: info}}, false
			}
		case evLeft:
			if _, ok := v.participants[ev.ID]; ok {
				delete(v.participants, ev.ID)
				return []Event{ParticipantLeft{ParticipantID: ev.ID}}, false
			}
		case evPublished:
			t := ev.Track
			info := t.info()
			old, known := v.tracks[t.ID]
			_, wasLost := v.lost[t.ID]
			delete(v.lost, t.ID)
			v.tracks[t.ID] = RemoteTrack{Info: info, Node: ev.Node, identity: v.participants[t.ParticipantID].info.Identity}
			applied = true
			if !known || wasLost || old.Info.ParticipantID != info.ParticipantID {
				return []Event{TrackPublished{Track: info}}, false // new, or republished by another participant
			}
		case evUnpublished:
			// Only its origin unpublishes a track: a node the broadcaster
			// left for another one may end its old copy after the new
			// origin announced it.
			if t, ok := v.tracks[ev.ID]; ok && t.Node == ev.Node {
				delete(v.tracks, ev.ID)
				applied = true
				return []Event{TrackUnpublished{TrackID: ev.ID, ParticipantID: ev.Owner}}, false
			}
		case evViewers:
			v.viewers[ev.Node] = ev.Viewers
			if ev.Participants != nil {
				v.members[ev.Node] = *ev.Participants
			} else {
				delete(v.members, ev.Node) // a node that does not say: read the store
			}
			return nil, true
		case evChat:
			return []Event{Chat{ParticipantID: ev.ID, Name: ev.Name, Text: ev.Text}}, false
		case evReaction:
			return []Event{Reaction{ParticipantID: ev.ID, Name: ev.Name, Emoji: ev.Emoji}}, false
		}
		return nil, false
	})
}

// applyRemote changes l with f and delivers the events f returns to the
// room's participants, as one broadcast of the room: under sendMu, so they
// are ordered with the room's own, and with the change made under mu, so a
// participant joining meanwhile either finds it in its joined state or
// gets its events, never both nor neither. When f reports that the viewer
// counts changed, a new count is scheduled.
func (r *Room) applyRemote(l *roomLink, f func(v *remoteView) ([]Event, bool)) {
	r.sendMu.Lock()
	r.mu.Lock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		r.mu.Unlock()
		r.sendMu.Unlock()
		return
	}
	v := r.remote
	v.mu.Lock()
	events, viewers := f(v)
	v.mu.Unlock()
	l.mu.Unlock()
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
}

// forgetAfter is how many heartbeats in a row a node must be missing from
// the registry before its publishers, tracks and viewers are dropped: one
// miss can be a Redis that restarted and a node that did not beat since.
const forgetAfter = 2

// forgetNodes drops what the rooms hold of nodes that left the registry
// (dead: their leases ended) for forgetAfter heartbeats, telling the rooms'
// clients.
func (m *Manager) forgetNodes(registered map[string]bool) {
	c := &m.cluster
	c.mu.Lock()
	links := make(map[*Room]*roomLink, len(c.links))
	for r, l := range c.links {
		links[r] = l
	}
	for node := range c.missing {
		if registered[node] {
			delete(c.missing, node)
		}
	}
	c.mu.Unlock()
	known := map[string]bool{}
	for r := range links {
		v := r.remote
		v.mu.Lock()
		for _, t := range v.tracks {
			known[t.Node] = true
		}
		for _, p := range v.participants {
			known[p.node] = true
		}
		for node := range v.viewers {
			known[node] = true
		}
		v.mu.Unlock()
	}
	live := map[string]bool{}
	c.mu.Lock()
	for node := range known {
		if registered[node] {
			live[node] = true
			continue
		}
		c.missing[node]++
		if c.missing[node] < forgetAfter {
			live[node] = true
		}
	}
	c.mu.Unlock()
	for r, l := range links {
		dead := map[string]bool{}
		v := r.remote
		v.mu.Lock()
		for _, t := range v.tracks {
			dead[t.Node] = !live[t.Node]
		}
		for _, p := range v.participants {
			dead[p.node] = dead[p.node] || !live[p.node]
		}
		for node := range v.viewers {
			dead[node] = dead[node] || !live[node]
		}
		v.mu.Unlock()
		for node, d := range dead {
			if d {
				r.loseOrigin(l, node)
			}
		}
	}
}

// publish queues ev for the room's channel. Its sequence number is taken
// when the queue runs it, so sequence order is publication order.
func (m *Manager) publish(r *Room, ev wireEvent) {
	if !m.opt.Cluster {
		return
	}
	ev.V, ev.Node, ev.Boot = 1, m.opt.NodeID, m.cluster.boot
	m.storeOp(m.publishOp(r.name, ev))
}

// shareCluster publishes, for the other nodes' clients, the room events
// this node just delivered to its own (called under the room's sendMu, so
// the order on the channel is the order of the room).
func (r *Room) shareCluster(evs ...Event) {
	if !r.m.opt.Cluster {
		return
	}
	for _, ev := range evs {
		var w wireEvent
		switch e := ev.(type) {
		case ParticipantJoined:
			i := e.Participant
			w = wireEvent{Type: evJoined, Participant: &ParticipantRecord{ID: i.ID, Identity: i.Identity, Name: i.Name, Publisher: i.Publisher, Node: r.m.opt.NodeID}}
		case ParticipantLeft:
			w = wireEvent{Type: evLeft, ID: e.ParticipantID}
		case TrackPublished:
			rec := e.Track.record(r.m.opt.NodeID)
			w = wireEvent{Type: evPublished, Track: &rec}
		case TrackUnpublished:
			w = wireEvent{Type: evUnpublished, ID: e.TrackID, Owner: e.ParticipantID}
		case Chat:
			w = wireEvent{Type: evChat, ID: e.ParticipantID, Name: e.Name, Text: e.Text}
		case Reaction:
			w = wireEvent{Type: evReaction, ID: e.ParticipantID, Name: e.Name, Emoji: e.Emoji}
		default:
			continue // the rest is this node's business (offers, candidates, counts)
		}
		r.m.publish(r, w)
	}
}

// viewerPublish is the shortest gap between two viewer count events of one
// node for one room.
const viewerPublish = time.Second

// publishViewers sends this node's viewer count of r if it changed and the
// last one went out at least viewerPublish ago; it reports whether the
// count still waits (to be retried at the next flush).
func (m *Manager) publishViewers(r *Room) bool {
	l := m.link(r)
	if l == nil {
		return false
	}
	n, k := r.ViewerCountLocal(), r.memberCount()
	l.mu.Lock()
	if n == l.sentViewers && k == l.sentMembers {
		l.mu.Unlock()
		return false
	}
	if time.Since(l.sentAt) < viewerPublish {
		l.mu.Unlock()
		return true
	}
	l.sentViewers, l.sentMembers, l.sentAt = n, k, time.Now()
	l.mu.Unlock()
	m.publish(r, wireEvent{Type: evViewers, Viewers: n, Participants: &k})
	return false
}

// memberCount is the room's participants on this node as its store record
// counts them (another node's relay is not one).
func (r *Room) memberCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, p := range r.participants {
		if !p.spec.Relay {
			n++
		}
	}
	return n
}

// linkedMembers returns the participants of room on other nodes as the
// room's link knows them, and false when it cannot tell (the room is not
// linked or not read yet, or a node has not said).
func (m *Manager) linkedMembers(room string) (int, bool) {
	r := m.Room(room)
	if r == nil {
		return 0, false
	}
	l := m.link(r)
	if l == nil {
		return 0, false
	}
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

// ViewerCountLocal returns the number of viewers on this node.
func (r *Room) ViewerCountLocal() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.viewers
}

// linkedRooms returns a copy of the rooms' links, to work on without the
// cluster lock.
func (m *Manager) linkedRooms() map[*Room]*roomLink {
	c := &m.cluster
	c.mu.Lock()
	defer c.mu.Unlock()
	links := make(map[*Room]*roomLink, len(c.links))
	for r, l := range c.links {
		links[r] = l
	}
	return links
}
