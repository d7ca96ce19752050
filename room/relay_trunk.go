package room

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/halobuzz/live/sfu"
)

// Relay trunks, room side (issue 27). Every relay from an origin node into
// this node rides on ONE trunk, whatever the number of rooms (sfu's
// relay_trunk.go has the transport and why it renegotiates):
//
//   - The edge opens the trunk to an origin when a room first needs one of
//     its tracks (not at start toward every node of the registry: most node
//     pairs never relay, and an idle trunk costs a connection on both
//     sides), with the authenticated request of the relay endpoint
//     (RelayDialer with an empty room: cluster secret, one-use jti; the
//     DTLS fingerprints and ICE credentials travel in it). It is kept while
//     both nodes live, even when no room uses it for a while; it is closed
//     when it fails (ICE, or its control channel stops answering), when the
//     origin is lost, and when the node stops.
//   - A room's relay from that origin (edgeRelay) is a set of tracks of the
//     trunk: setting it up, extending it and closing it are changes of the
//     trunk (batched, one renegotiation over the open connection for all
//     rooms that change at once), not connections.
//   - On the origin, the room sees the relay as today: a hidden participant
//     of the room, whose connection is the room's view of the trunk
//     (sfu.TrunkOut.View). A republish moves its copies, the broadcast's
//     end removes them, the room's end closes the view: each touches that
//     room's copies only.
//   - A trunk that fails fails every room's relay on it: their copies stay
//     with their viewers (as with a lost per-room relay), and the rooms ask
//     again after relayRetry, at about the same moment, so the new trunk
//     carries them after one set-up and a few batched changes.

// errTrunksOff refuses a trunk on a node with cluster.relay_trunks off
// (its registry entry does not offer them: an edge asks only by mistake).
var errTrunksOff = fmt.Errorf("%w: relay trunks are off on this node (cluster.relay_trunks)", ErrRelayUnavailable)

// trunks are a node's trunks: those it pulls (by origin) and those it
// serves (by edge).
type trunks struct {
	mu  sync.Mutex
	in  map[string]*edgeTrunk   // by origin node
	out map[string]*originTrunk // by edge node
}

// edgeTrunk is a trunk this node pulls from origin.
type edgeTrunk struct {
	m      *Manager
	origin string
	ready  chan struct{} // closed when set up or failed
	err    error         // set before ready is closed
	in     *sfu.TrunkIn
	hangUp func()

	mu      sync.Mutex
	entries map[string]*trunkEntry // by origin track id
	dead    bool
	// watchStrikes is the relay watch's count (relay_watch.go; that
	// loop's own).
	watchStrikes int
}

// trunkEntry is a track a room's relay asked the trunk for.
type trunkEntry struct {
	er    *edgeRelay
	track *sfu.Track // once it arrived
}

func (m *Manager) trunkSet() *trunks {
	m.trunkOnce.Do(func() {
		m.trunks = &trunks{in: map[string]*edgeTrunk{}, out: map[string]*originTrunk{}}
	})
	return m.trunks
}

// trunkTo returns the trunk to origin, opening it when there is none.
func (m *Manager) trunkTo(ctx context.Context, origin string) (*edgeTrunk, error) {
	ts := m.trunkSet()
	ts.mu.Lock()
	et := ts.in[origin]
	if et == nil {
		et = &edgeTrunk{m: m, origin: origin, ready: make(chan struct{}), entries: map[string]*trunkEntry{}}
		ts.in[origin] = et
		ts.mu.Unlock()
		et.open()
	} else {
		ts.mu.Unlock()
	}
	select {
	case <-et.ready:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrRelayUnavailable, ctx.Err())
	}
	if et.err != nil {
		return nil, et.err
	}
	return et, nil
}

// open sets the trunk up: one authenticated request, ICE and DTLS.
func (et *edgeTrunk) open() {
	m := et.m
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := func() error {
		node, err := m.originNode(ctx, et.origin)
		if err != nil {
			return err
		}
		in, err := m.engine.NewTrunkIn(sfu.PublisherEvents{
			OnTrack:      et.arrived,
			OnTrackEnded: et.ended,
			OnFailed:     func() { go et.fail("connection lost") },
		})
		if err != nil {
			return err
		}
		et.in = in
		offer, err := in.Offer(ctx)
		if err != nil {
			return err
		}
		answer, hangUp, err := m.opt.RelayDial(ctx, *node, "", nil, offer)
		if err != nil {
			return err
		}
		et.hangUp = hangUp
		return in.Accept(ctx, answer)
	}()
	if err != nil {
		et.err = err
		close(et.ready)
		et.fail("set-up failed")
		return
	}
	m.relaysConnected.Add(1)
	m.trunksOpened.Add(1)
	m.log.Info("relay trunk connected", "origin", et.origin)
	close(et.ready)
}

// fail closes the trunk; every room's relay on it is lost (their tracks
// end: removeRelayed) and asks again after relayRetry.
func (et *edgeTrunk) fail(why string) {
	et.mu.Lock()
	if et.dead {
		et.mu.Unlock()
		return
	}
	et.dead = true
	var ers []*edgeRelay
	for _, e := range et.entries {
		if !slices.Contains(ers, e.er) {
			ers = append(ers, e.er)
		}
	}
	et.mu.Unlock()
	ts := et.m.trunkSet()
	ts.mu.Lock()
	if ts.in[et.origin] == et {
		delete(ts.in, et.origin)
	}
	ts.mu.Unlock()
	<-et.ready // open has finished with et.in and et.hangUp
	if et.err == nil {
		et.m.log.Info("relay trunk closed", "origin", et.origin, "why", why)
	}
	if et.in != nil {
		_ = et.in.Close()
	}
	if et.hangUp != nil {
		et.hangUp()
	}
	// Every room's relay on it is lost, whether its tracks had arrived
	// (they ended above) or were still on their way.
	for _, er := range ers {
		er.fail()
	}
}

// maxTrunkSections bounds a trunk's session description: a media section
// that carried a removed track is never reused (sfu's relay_trunk.go), so
// a long-lived trunk between busy nodes would grow by one section per
// track it ever carried, and each change would cost more. Past the bound
// the trunk is opened afresh: its rooms' viewers wait about as long as
// for a lost trunk (their copies stay; a new trunk carries them).
const maxTrunkSections = 256

// reopen closes the trunk on purpose and has every room on it ask again
// at once, on a new trunk.
func (et *edgeTrunk) reopen(why string) {
	et.mu.Lock()
	rooms := map[*Room]bool{}
	for _, e := range et.entries {
		rooms[e.er.r] = true
	}
	et.mu.Unlock()
	et.fail(why)
	if et.m.isDraining() {
		return
	}
	for r := range rooms {
		r.demandRelays(false)
	}
}

// packetsIn counts the packets the trunk took in (the stall check).
func (et *edgeTrunk) packetsIn() uint64 {
	select {
	case <-et.ready:
	default:
		return 0
	}
	if et.in == nil {
		return 0
	}
	return et.in.PacketsIn()
}

// arrived routes a track of the trunk to the room's relay that asked for it.
func (et *edgeTrunk) arrived(t *sfu.Track) {
	id := t.Info().ID
	et.mu.Lock()
	e := et.entries[id]
	if e != nil {
		e.track = t
	}
	et.mu.Unlock()
	if e == nil {
		return // let go meanwhile: its removal is on its way
	}
	e.er.r.addRelayed(e.er, t)
}

// ended tells the room whose relay carried t that it ended: released by
// this node (forgotten already), or lost with the trunk.
func (et *edgeTrunk) ended(t *sfu.Track) {
	id := t.Info().ID
	et.mu.Lock()
	e := et.entries[id]
	if e == nil || e.track != t {
		et.mu.Unlock()
		return
	}
	delete(et.entries, id)
	et.mu.Unlock()
	e.er.r.removeRelayed(e.er, t)
}

// connectTrunkRelay is connectRelay over a trunk: er's tracks are added to
// the trunk to its origin; those that the relay it replaces (er.old)
// carries already move to er at once.
func (r *Room) connectTrunkRelay(ctx context.Context, er *edgeRelay) error {
	et, err := r.m.trunkTo(ctx, er.origin)
	if err != nil {
		return err
	}
	er.trunk = et
	var fresh []string
	var moved []*sfu.Track
	et.mu.Lock()
	for _, id := range er.ids {
		e := et.entries[id]
		switch {
		case e == nil:
			et.entries[id] = &trunkEntry{er: er}
			fresh = append(fresh, id)
		case e.er.r == r:
			e.er = er // the room's previous relay from this origin had it
			if e.track != nil {
				moved = append(moved, e.track)
			}
		default:
			// Another incarnation of the room (removed and created again)
			// let it go and its removal is on its way: ask again after it.
			et.entries[id] = &trunkEntry{er: er}
			fresh = append(fresh, id)
		}
	}
	et.mu.Unlock()
	r.mu.Lock()
	if r.relay.relays == nil {
		r.relay.relays = map[string]*edgeRelay{}
	}
	r.relay.relays[er.origin] = er
	for _, t := range moved {
		if e := r.tracks[t.Info().ID]; e != nil && e.track == t {
			e.relay = er
		}
	}
	r.mu.Unlock()
	er.mu.Lock()
	er.arrived += len(moved)
	done := er.arrived == len(er.ids)
	old := er.old
	if done {
		er.old = nil
	}
	er.mu.Unlock()
	if done && old != nil {
		go old.close()
	}
	if len(fresh) == 0 {
		return nil
	}
	kinds := kindsOf(r.RemoteTracks(), fresh)
	// Not waited for: the change joins the trunk's next batch, and the
	// tracks arrive when the origin has answered it (addRelayed).
	et.in.Post(sfu.TrunkChange{Add: []sfu.TrunkAdd{{Room: r.name, Tracks: fresh, Audio: kinds[0], Video: kinds[1]}}}, func(err error) {
		if err == nil {
			if n := et.in.Sections(); n > maxTrunkSections {
				go et.reopen(fmt.Sprintf("%d media sections", n))
			}
			return
		}
		et.mu.Lock()
		for _, id := range fresh {
			if e := et.entries[id]; e != nil && e.er == er && e.track == nil {
				delete(et.entries, id)
			}
		}
		et.mu.Unlock()
		if errors.Is(err, sfu.ErrTrunkRefused) {
			// Unpublished on the origin meanwhile: its cluster events
			// tell this room.
			r.m.log.Info("relay: the origin no longer publishes some tracks", "room", r.name, "origin", er.origin, "err", err)
			return
		}
		r.m.relayFailures.Add(1)
		r.m.log.Warn("relay failed", "room", r.name, "origin", er.origin, "err", err)
		go er.fail() // asks again after relayRetry
	})
	r.m.log.Info("relay asked for over the trunk", "room", r.name, "origin", er.origin, "tracks", len(fresh))
	return nil
}

// release gives er's tracks back to the trunk: the room's copies are
// forgotten now, the origin stops sending them with the next change.
func (et *edgeTrunk) release(er *edgeRelay) {
	var ids []string
	et.mu.Lock()
	for id, e := range et.entries {
		if e.er == er {
			ids = append(ids, id)
			delete(et.entries, id)
		}
	}
	dead := et.dead
	et.mu.Unlock()
	slices.Sort(ids)
	for _, id := range ids {
		er.r.forgetRelayed(id, func(e *published) bool { return e.relay == er })
	}
	if len(ids) == 0 || dead {
		return
	}
	et.in.Post(sfu.TrunkChange{Remove: ids}, nil)
}

// forget gives track id of er back to the trunk (the room forgot its
// copy: the track was unpublished on its origin).
func (et *edgeTrunk) forget(er *edgeRelay, id string) {
	et.mu.Lock()
	e := et.entries[id]
	mine := e != nil && e.er == er
	if mine {
		delete(et.entries, id)
	}
	dead := et.dead
	et.mu.Unlock()
	if mine && !dead {
		et.in.Post(sfu.TrunkChange{Remove: []string{id}}, nil)
	}
}

// drop forgets er's tracks without touching the room's copies (the relay
// was lost: they wait for a new one).
func (et *edgeTrunk) drop(er *edgeRelay) {
	et.mu.Lock()
	defer et.mu.Unlock()
	for id, e := range et.entries {
		if e.er == er {
			delete(et.entries, id)
		}
	}
}

// closeTrunks closes every trunk (the node stops).
func (m *Manager) closeTrunks() {
	ts := m.trunkSet()
	ts.mu.Lock()
	in := make([]*edgeTrunk, 0, len(ts.in))
	for _, et := range ts.in {
		in = append(in, et)
	}
	out := make([]*originTrunk, 0, len(ts.out))
	for _, ot := range ts.out {
		out = append(out, ot)
	}
	ts.mu.Unlock()
	for _, et := range in {
		et.fail("the node stops")
	}
	for _, ot := range out {
		ot.close()
	}
}

// TrunksIn reports how many trunks this node pulls from other nodes.
func (m *Manager) TrunksIn() int {
	ts := m.trunkSet()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return len(ts.in)
}

// originTrunk is a trunk this node serves to the edge node from.
type originTrunk struct {
	m    *Manager
	from string
	out  *sfu.TrunkOut

	mu     sync.Mutex
	parts  map[string]*Participant // the relay participant of each room, by room name
	closed bool
}

// ServeTrunk is the origin's side of a trunk: node from offers the trunk's
// control channel; this node answers. A trunk from from that was there
// already is closed (the edge restarted or lost it). Tracks are then asked
// for over the trunk itself, per room.
func (m *Manager) ServeTrunk(ctx context.Context, from, offer string) (string, error) {
	if m.isDraining() {
		return "", ErrDraining
	}
	if !m.opt.RelayTrunks {
		return "", errTrunksOff
	}
	ot := &originTrunk{m: m, from: from, parts: map[string]*Participant{}}
	out, err := m.engine.NewTrunkOut(ot.resolve, sfu.SubscriberEvents{OnFailed: func() { go ot.close() }})
	if err != nil {
		return "", err
	}
	ot.out = out
	answer, err := out.Answer(ctx, offer)
	if err != nil {
		_ = out.Close()
		return "", err
	}
	ts := m.trunkSet()
	ts.mu.Lock()
	prev := ts.out[from]
	ts.out[from] = ot
	ts.mu.Unlock()
	if prev != nil {
		go prev.close()
	}
	m.log.Info("relay trunk served", "to", from)
	return answer, nil
}

// resolve gives the tracks of roomName the edge asks for (published here,
// not relayed from elsewhere) and makes sure the room has the trunk's
// relay participant, whose connection is the room's view of the trunk.
func (ot *originTrunk) resolve(roomName string, ids []string) ([]*sfu.Track, error) {
	m := ot.m
	r := m.Room(roomName)
	if r == nil {
		return nil, ErrNoTracks
	}
	var tracks []*sfu.Track
	r.mu.Lock()
	for _, id := range ids {
		e := r.tracks[id]
		if e == nil || e.relay != nil {
			r.mu.Unlock()
			return nil, fmt.Errorf("%w: %q is not published on this node", ErrUnknownTrack, id)
		}
		tracks = append(tracks, e.track)
	}
	r.mu.Unlock()
	ot.mu.Lock()
	p := ot.parts[roomName]
	closed := ot.closed
	ot.mu.Unlock()
	if closed {
		return nil, sfu.ErrTrunkClosed
	}
	if p != nil && !p.left.Load() && p.room == r {
		return tracks, nil
	}
	p, err := m.Join(roomName, ParticipantSpec{Identity: "relay:" + ot.from, Subscribe: true, Hidden: true, LeaveOnFailure: true, Relay: true}, nopSink{})
	if err != nil {
		return nil, err
	}
	var view *sfu.Subscriber
	view = ot.out.View(roomName, sfu.SubscriberEvents{OnFailed: func() { p.subscriberFailed(view) }})
	p.mu.Lock()
	p.subscriber = view // not a viewer: the edge counts its own
	p.mu.Unlock()
	ot.mu.Lock()
	ot.parts[roomName] = p
	ot.mu.Unlock()
	m.log.Info("relay served over the trunk", "room", roomName, "to", ot.from, "tracks", len(tracks))
	return tracks, nil
}

// close ends the served trunk: each room's relay participant leaves.
func (ot *originTrunk) close() {
	ot.mu.Lock()
	if ot.closed {
		ot.mu.Unlock()
		return
	}
	ot.closed = true
	ot.mu.Unlock()
	ts := ot.m.trunkSet()
	ts.mu.Lock()
	if ts.out[ot.from] == ot {
		delete(ts.out, ot.from)
	}
	ts.mu.Unlock()
	_ = ot.out.Close() // the views fail: their participants leave
	ot.m.log.Info("relay trunk ended", "to", ot.from)
}
