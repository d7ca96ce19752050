package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/halobuzz/live/room"
)

// Cross-node room events. Each node of a room subscribes to the room's
// channel and publishes there what it announces to its own clients
// (Share): publishers announced and leaving, tracks published and
// unpublished, chat and reactions; plus its viewer count (at most once a
// second). A node delivers its own events to its clients directly and
// ignores their echo; other nodes' events reach its clients as broadcasts
// of the room (room.Room's Remote* methods), ordered with the room's own.
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

	Participant *room.ParticipantRecord `json:"participant,omitempty"` // as the store holds it, Node its node
	Track       *room.TrackRecord       `json:"track,omitempty"`       // the record the store holds, Node its origin
	// ID is the participant that left or the track that ended; Owner the
	// participant whose track ended.
	ID      string `json:"id,omitempty"`
	Owner   string `json:"owner,omitempty"`
	Viewers int    `json:"viewers,omitempty"`
	// Participants, on a viewers event, is the sending node's participant
	// count of the room (as its store record counts them); absent from
	// nodes that do not send it.
	Participants *int `json:"participants,omitempty"`
	// Identity is the chat or reaction sender's token identity (sub);
	// absent from nodes that do not send it.
	Identity string `json:"identity,omitempty"`
	Name     string `json:"name,omitempty"`  // chat or reaction sender's name
	Text     string `json:"text,omitempty"`  // chat text
	Emoji    string `json:"emoji,omitempty"` // reaction
	// Mod is a moderation request or its acknowledgement (moderation.go).
	Mod *modWire `json:"mod,omitempty"`
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
	// maxWireField fits a token's identity or name: 128 characters of up
	// to 4 bytes each (signaling/auth's limits).
	maxWireField = 512
	maxWireText  = 4096
)

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
	fields := []string{ev.Node, ev.Boot, ev.ID, ev.Owner, ev.Identity, ev.Name, ev.Emoji}
	if p := ev.Participant; p != nil {
		fields = append(fields, p.ID, p.Identity, p.Name, p.Node)
	}
	if t := ev.Track; t != nil {
		fields = append(fields, t.ID, t.ParticipantID, t.Kind, t.Source, t.Name, t.MID, t.Codec, t.Node)
		if t.Siblings < 0 || t.Siblings > room.MaxSiblings {
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
	case evModerate, evModerateAck:
		ok = validMod(ev.Type, ev.Mod) // moderation.go
	}
	if !ok {
		return ev, fmt.Errorf("%w: type %q incomplete or unknown", errBadEvent, ev.Type)
	}
	return ev, nil
}

// roomLink is the cluster's side of a room: its subscription to the room's
// channel, what it took from each publisher (sequence numbers), and what it
// last published of the room's counts. The room's view of the other nodes
// is the room's own (room.Room's Remote* methods).
type roomLink struct {
	mu          sync.Mutex
	cancel      func()
	closed      bool
	sentMembers int               // this node's participant count last published
	lastSeq     map[string]uint64 // boot -> last sequence taken
	boots       map[string]string // node -> the boot its last event came from
	sentViewers int               // this node's count last published
	sentAt      time.Time
	pending     bool // a link job is queued
	// reread: read the room once more at the next heartbeat. A channel
	// subscription is confirmed asynchronously, on another connection than
	// the first read: an event published in between is neither read nor
	// received, so the read is repeated once the subscription stands.
	reread bool
}

// link returns r's roomLink, or nil.
func (c *Cluster) link(r *room.Room) *roomLink {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.links[r]
}

// RoomCreated subscribes a new room to its channel and reads what other
// nodes hold of it; both through the ordered queue, off the join path.
func (c *Cluster) RoomCreated(r *room.Room) {
	l := &roomLink{lastSeq: map[string]uint64{}, boots: map[string]string{}, sentViewers: -1, sentMembers: -1}
	c.mu.Lock()
	c.links[r] = l
	c.mu.Unlock()
	c.queueLink(r, l)
}

// queueLink queues the job that subscribes l (if it is not yet) and reads
// the room from the store. When it cannot be queued or fails, the next
// heartbeat queues it again (relinkRooms).
func (c *Cluster) queueLink(r *room.Room, l *roomLink) {
	l.mu.Lock()
	l.pending = true
	l.mu.Unlock()
	queued := c.storeWrite(func(ctx context.Context) error {
		l.mu.Lock()
		l.pending = false
		subscribed, closed := l.cancel != nil, l.closed
		l.mu.Unlock()
		if closed {
			return nil
		}
		if !subscribed {
			cancel, err := c.store.Subscribe(r.Name(), func(b []byte) { c.receive(r, l, b) })
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
		st, err := c.readRoom(ctx, r.Name())
		if err != nil {
			return err
		}
		if !l.isClosed() {
			r.RemoteState(st)
			r.RemoteRead()
		}
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

func (l *roomLink) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// relinkRooms queues the link job again for every room whose subscription
// or first read has not succeeded yet.
func (c *Cluster) relinkRooms() {
	for r, l := range c.linkedRooms() {
		read := r.RemoteReadDone()
		l.mu.Lock()
		need := (l.cancel == nil || !read) && !l.closed && !l.pending
		reread := !need && l.reread && !l.closed && !l.pending
		l.reread = false
		l.mu.Unlock()
		switch {
		case need:
			c.queueLink(r, l)
		case reread:
			c.reconcileRoom(r, l)
		}
	}
}

// unlinkRoom ends r's subscription (the room was removed).
func (c *Cluster) unlinkRoom(r *room.Room) {
	c.mu.Lock()
	l := c.links[r]
	delete(c.links, r)
	delete(c.remote, r.Name())
	delete(c.viewersDirty, r)
	c.mu.Unlock()
	if l == nil {
		return
	}
	l.mu.Lock()
	l.closed = true
	cancel := l.cancel
	l.mu.Unlock()
	if cancel != nil {
		c.storeWrite(func(context.Context) error { cancel(); return nil })
	}
}

// reconcileRooms queues a reconcile of every linked room (after an outage).
func (c *Cluster) reconcileRooms() {
	for r, l := range c.linkedRooms() {
		c.reconcileRoom(r, l)
	}
}

// reconcileRoom queues a read of r from the store, for the room to bring
// its view of the other nodes in line with it (room.Room.RemoteState).
func (c *Cluster) reconcileRoom(r *room.Room, l *roomLink) {
	c.storeWrite(func(ctx context.Context) error {
		st, err := c.readRoom(ctx, r.Name())
		if err != nil {
			return err
		}
		if !l.isClosed() {
			r.RemoteState(st)
		}
		return nil
	})
}

// receive applies one event from the room's channel. The store calls it
// from one goroutine, in publication order per publisher.
func (c *Cluster) receive(r *room.Room, l *roomLink, b []byte) {
	ev, err := parseWireEvent(b)
	if err != nil {
		c.log.Warn("cluster: dropped a bad room event", "room", r.Name(), "err", err)
		return
	}
	if ev.Node == c.opt.NodeID {
		return // our own echo: delivered locally already
	}
	l.mu.Lock()
	if l.closed || ev.Seq <= l.lastSeq[ev.Boot] {
		l.mu.Unlock()
		return // unlinked, or a duplicate or late event
	}
	l.lastSeq[ev.Boot] = ev.Seq
	prev := l.boots[ev.Node]
	l.boots[ev.Node] = ev.Boot
	l.mu.Unlock()
	if prev != "" && prev != ev.Boot {
		// ev.Node restarted under the same id, within the registry's TTL
		// (a crash and a quick restart): nobody declared it lost, but its
		// earlier process's tracks are gone, and relays that still ask for
		// them are refused. As for a lost node, they are kept for the
		// republish grace, so that the broadcaster publishing again takes
		// them over; the node itself is believed again at once.
		c.log.Warn("cluster: a node restarted; its earlier tracks in the room are lost", "room", r.Name(), "node", ev.Node)
		r.RemoteNodeLost(ev.Node)
		r.RemoteNodeBack(ev.Node)
	}
	switch ev.Type {
	case evNodeGone:
		r.RemoteNodeLost(ev.Node)
	case evModerate:
		c.moderated(r, ev) // moderation.go
	case evJoined:
		p := *ev.Participant
		p.Node = ev.Node
		r.RemoteJoined(p)
	case evLeft:
		r.RemoteLeft(ev.ID)
	case evPublished:
		t := *ev.Track
		t.Node = ev.Node
		r.RemotePublished(t)
	case evUnpublished:
		r.RemoteUnpublished(ev.Node, ev.ID, ev.Owner)
	case evViewers:
		r.RemoteCounts(ev.Node, ev.Viewers, ev.Participants)
	case evChat:
		r.RemoteMessage(room.Chat{ParticipantID: ev.ID, Identity: ev.Identity, Name: ev.Name, Text: ev.Text})
	case evReaction:
		r.RemoteMessage(room.Reaction{ParticipantID: ev.ID, Identity: ev.Identity, Name: ev.Name, Emoji: ev.Emoji})
	}
}

// forgetAfter is how many heartbeats in a row a node must be missing from
// the registry before its publishers, tracks and viewers are dropped: one
// miss can be a Redis that restarted and a node that did not beat since.
const forgetAfter = 2

// forgetNodes drops what the rooms hold of nodes that left the registry
// (dead: their leases ended) for forgetAfter heartbeats, telling the rooms'
// clients (room.Room.RemoteNodeLost).
func (c *Cluster) forgetNodes(registered map[string]bool) {
	links := c.linkedRooms()
	var back []string
	c.mu.Lock()
	for node := range c.missing {
		if registered[node] {
			delete(c.missing, node)
		}
	}
	now := time.Now()
	for node, at := range c.lost {
		switch {
		case registered[node]:
			delete(c.lost, node)
			back = append(back, node)
		case now.Sub(at) > lostMemory:
			delete(c.lost, node) // gone for good
		}
	}
	c.mu.Unlock()
	if len(back) > 0 {
		// A node declared lost is registered again: it was paused, stalled
		// or cut off, not dead. Its records are believed again, and every
		// room re-reads the store now and at the next heartbeats (the node
		// rewrites what of its state expired at its first heartbeat back,
		// which may come after this one's).
		c.log.Warn("cluster: a node declared lost is back; re-reading its rooms", "nodes", back)
		for r := range links {
			for _, node := range back {
				r.RemoteNodeBack(node)
			}
		}
		c.reconcile = forgetAfter + 1
	}
	known := map[*room.Room][]string{}
	all := map[string]bool{}
	for r := range links {
		known[r] = r.RemoteNodes()
		for _, node := range known[r] {
			all[node] = true
		}
	}
	live := map[string]bool{}
	c.mu.Lock()
	for node := range all {
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
		for _, node := range known[r] {
			if !live[node] && !l.isClosed() {
				r.RemoteNodeLost(node)
				c.mu.Lock()
				c.lost[node] = now
				c.mu.Unlock()
			}
		}
	}
}

// lostMemory is how long a node declared lost is remembered, to notice its
// return: far longer than any pause it could come back from with its
// state.
const lostMemory = time.Hour

// publish queues ev for the room's channel. Its sequence number is taken
// when the queue runs it, so sequence order is publication order.
func (c *Cluster) publish(r *room.Room, ev wireEvent) {
	ev.V, ev.Node, ev.Boot = 1, c.opt.NodeID, c.boot
	c.storeOp(c.publishOp(r.Name(), ev))
}

// Share publishes, for the other nodes' clients, the room events this node
// just delivered to its own (called under the room's broadcast order, so
// the order on the channel is the order of the room).
func (c *Cluster) Share(r *room.Room, evs ...room.Event) {
	for _, ev := range evs {
		var w wireEvent
		switch e := ev.(type) {
		case room.ParticipantJoined:
			i := e.Participant
			w = wireEvent{Type: evJoined, Participant: &room.ParticipantRecord{ID: i.ID, Identity: i.Identity, Name: i.Name, Publisher: i.Publisher, Node: c.opt.NodeID}}
		case room.ParticipantLeft:
			w = wireEvent{Type: evLeft, ID: e.ParticipantID}
		case room.TrackPublished:
			rec := e.Track.Record(c.opt.NodeID)
			w = wireEvent{Type: evPublished, Track: &rec}
		case room.TrackUnpublished:
			w = wireEvent{Type: evUnpublished, ID: e.TrackID, Owner: e.ParticipantID}
		case room.Chat:
			w = wireEvent{Type: evChat, ID: e.ParticipantID, Identity: e.Identity, Name: e.Name, Text: e.Text}
		case room.Reaction:
			w = wireEvent{Type: evReaction, ID: e.ParticipantID, Identity: e.Identity, Name: e.Name, Emoji: e.Emoji}
		default:
			continue // the rest is this node's business (offers, candidates, counts)
		}
		c.publish(r, w)
	}
}

// viewerPublish is the shortest gap between two viewer count events of one
// node for one room.
const viewerPublish = time.Second

// publishViewers sends this node's viewer count of r if it changed and the
// last one went out at least viewerPublish ago; it reports whether the
// count still waits (to be retried at the next flush).
func (c *Cluster) publishViewers(r *room.Room) bool {
	l := c.link(r)
	if l == nil {
		return false
	}
	n, k := r.LocalCounts()
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
	c.publish(r, wireEvent{Type: evViewers, Viewers: n, Participants: &k})
	return false
}

// linkedRooms returns a copy of the rooms' links, to work on without the
// cluster lock.
func (c *Cluster) linkedRooms() map[*room.Room]*roomLink {
	c.mu.Lock()
	defer c.mu.Unlock()
	links := make(map[*room.Room]*roomLink, len(c.links))
	for r, l := range c.links {
		links[r] = l
	}
	return links
}
