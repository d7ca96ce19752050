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

// Cascade relays, room side. A room on this node (the edge) whose tracks
// are published on another node (the origin) gets them through ONE relay
// connection per origin, whatever the number of local viewers: the edge
// asks the origin for the tracks its viewers need (RelayDialer, an HTTP
// request authenticated with the cluster secret), and each relayed track
// is an ordinary published track of the local room, which local viewers
// subscribe to as to any other. The topology is a star: every edge pulls
// from the origin directly (one hop, the least delay; the origin sends each
// track once per edge node, not once per viewer).
//
//   - The relay is set up when a local participant first needs a remote
//     track (subscribe to all, subscribe to its id, a WHEP player), and
//     closed RelayGrace after the room's last local viewer left.
//   - When the origin publishes a track the relay does not carry, a new
//     relay connection with the whole set replaces it; viewers are moved to
//     the new copies with sfu.DownTrack.Switch, without renegotiating.
//   - On the origin, a relay is a hidden participant of the room with a
//     receive-only connection (ServeRelay): the room's own machinery moves it
//     to a republished track and ends it when the broadcast really ends,
//     which closes the relay on the edge.
//
// Relayed tracks are not listed as this node's: clients and the store know
// them from the origin (cluster events), so nothing is announced twice.

// RelayDialer asks origin for the tracks ids of room: it sends the relay's
// offer and returns the origin's answer, and a function that tells the
// origin the relay is closed (so it stops sending at once rather than when
// ICE notices). With an empty room and no ids it opens a relay trunk
// (relay_trunk.go): the offer is the trunk's, and tracks are asked for
// over the trunk.
type RelayDialer func(ctx context.Context, origin NodeInfo, room string, ids []string, offer string) (answer string, hangUp func(), err error)

// ErrRelayUnavailable is returned when a remote track cannot be relayed now.
var ErrRelayUnavailable = errors.New("room: the track's origin node cannot be reached now")

// relayRetry is how soon a relay that could not be set up is tried again
// while it is still needed.
const relayRetry = 2 * time.Second

// edgeRelay is one relay connection from an origin node into this room.
type edgeRelay struct {
	r      *Room
	origin string
	ids    []string   // the tracks it carries, sorted
	trunk  *edgeTrunk // the connection to origin it rides on (relay_trunk.go), or nil:
	pub    *sfu.Publisher
	hangUp func()
	gen    uint64 // later relays replace earlier ones, never the reverse
	// watchStrikes counts the relay watch's checks in a row that found its
	// media lost on the way (relay_watch.go; that loop's own).
	watchStrikes int
	since        time.Time // when it was asked for

	mu      sync.Mutex
	owners  map[string]*Participant // stand-ins for the origin's publishers, by participant id
	arrived int
	closed  bool
	lost    bool       // closed because the connection or the origin was lost, not by this node
	old     *edgeRelay // the relay this one replaces, closed when all its tracks arrived
}

// relayState is a room's relays (guarded by Room.mu).
type relayState struct {
	relays  map[string]*edgeRelay // by origin node
	pending map[string]bool       // origins whose relay is being set up
	timer   *time.Timer           // closes the relays when no local viewer is left
	// gathering holds, by origin, when the relay began waiting for a
	// publisher's other tracks.
	gathering map[string]time.Time
}

// owner returns the stand-in participant that owns a relayed track of the
// origin's participant id: tracks of one publisher share an owner, so a WHEP
// player gets a video and the audio of the same broadcaster.
func (er *edgeRelay) owner(id string) *Participant {
	er.mu.Lock()
	defer er.mu.Unlock()
	if p := er.owners[id]; p != nil {
		return p
	}
	p := &Participant{id: id, room: er.r, spec: ParticipantSpec{Identity: "relay", Hidden: true}, sink: nopSink{}}
	er.owners[id] = p
	return p
}

type nopSink struct{}

func (nopSink) Event(Event) {}

// neededRemote returns, by origin node, the remote tracks this node's
// participants need: all of them when someone subscribes to everything
// (or watches over WHEP; it then reports all), else those asked for by
// id. r.mu is held.
func (r *Room) neededRemoteLocked(all bool) (map[string][]RemoteTrack, bool) {
	remote := r.RemoteTracks()
	if len(remote) == 0 {
		return nil, all
	}
	if !all {
		for _, p := range r.participants {
			if p.wantsRemote() {
				all = true
				break
			}
		}
	}
	out := map[string][]RemoteTrack{}
	for _, t := range remote {
		if all || r.wantedLocked(t.Info.ID) {
			out[t.Node] = append(out[t.Node], t)
		}
	}
	return out, all
}

func (r *Room) wantedLocked(id string) bool {
	for _, p := range r.participants {
		if p.wantRemote[id] {
			return true
		}
	}
	return false
}

// demandRelays sets up or extends the relays the room's participants need
// (all: as if someone subscribed to everything).
func (r *Room) demandRelays(all bool) {
	if r.m.cluster == nil || r.m.opt.RelayDial == nil {
		return
	}
	r.mu.Lock()
	need, all := r.neededRemoteLocked(all)
	var start []func()
	for origin, tracks := range need {
		ids := make([]string, 0, len(tracks))
		for _, t := range tracks {
			ids = append(ids, t.Info.ID)
		}
		cur := r.relay.relays[origin]
		if cur != nil {
			ids = union(ids, cur.ids)
			if slices.Equal(ids, cur.ids) {
				continue // carried already
			}
		}
		slices.Sort(ids)
		if r.relay.pending[origin] {
			continue // being set up; it is checked again when it is
		}
		// Waiting for a publisher's other tracks is worth it only when they
		// are wanted: everything is (tracks is then all of origin's).
		if all && incomplete(tracks) {
			if r.relay.gathering == nil {
				r.relay.gathering = map[string]time.Time{}
			}
			began, waiting := r.relay.gathering[origin]
			if !waiting {
				began = time.Now()
				r.relay.gathering[origin] = began
				time.AfterFunc(relayGather, func() {
					if !r.m.isDraining() {
						r.demandRelays(false)
					}
				})
			}
			if time.Since(began) < relayGather {
				continue // the other tracks' announcements are on their way
			}
		}
		delete(r.relay.gathering, origin)
		if r.relay.pending == nil {
			r.relay.pending = map[string]bool{}
		}
		r.relay.pending[origin] = true
		origin, kinds := origin, kindsOf(tracks, ids)
		start = append(start, func() { r.startRelay(origin, ids, kinds, cur) })
	}
	if r.relay.timer != nil && r.viewers > 0 {
		r.relay.timer.Stop()
		r.relay.timer = nil
	}
	r.mu.Unlock()
	for _, f := range start {
		if !r.m.goRelay(f) {
			r.mu.Lock()
			clear(r.relay.pending)
			r.mu.Unlock()
		}
	}
}

// goRelay runs f on a goroutine that Close waits for; after Close began it
// does not run it and reports false.
func (m *Manager) goRelay(f func()) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.relaysDone {
		return false
	}
	m.relayWG.Add(1)
	go func() {
		defer m.relayWG.Done()
		f()
	}()
	return true
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return out
}

func kindsOf(tracks []RemoteTrack, ids []string) (k [2]int) {
	for _, id := range ids {
		for _, t := range tracks {
			if t.Info.ID == id {
				if t.Info.Kind == "audio" {
					k[0]++
				} else {
					k[1] += max(1, len(t.Info.Layers)) // a relay carries each simulcast layer
				}
			}
		}
	}
	return k
}

// startRelay connects a relay from origin carrying ids (kinds: audio and
// video counts), replacing old when it has all the new tracks.
func (r *Room) startRelay(origin string, ids []string, kinds [2]int, old *edgeRelay) {
	err := r.connectRelay(origin, ids, kinds, old)
	r.mu.Lock()
	delete(r.relay.pending, origin)
	r.mu.Unlock()
	if err != nil {
		r.m.log.Warn("relay failed", "room", r.name, "origin", origin, "err", err)
		r.m.relayFailures.Add(1)
		time.AfterFunc(relayRetry, func() {
			if !r.m.isDraining() {
				r.demandRelays(false)
			}
		})
		return
	}
	r.demandRelays(false) // what became needed meanwhile
}

func (r *Room) connectRelay(origin string, ids []string, kinds [2]int, old *edgeRelay) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	node, err := r.m.originNode(ctx, origin)
	if err != nil {
		return err
	}
	er := &edgeRelay{r: r, origin: origin, ids: ids, owners: map[string]*Participant{}, old: old, gen: r.m.relayGen.Add(1), since: time.Now()}
	if r.m.opt.RelayTrunks && node.Trunks {
		return r.connectTrunkRelay(ctx, er)
	}
	// A relay connection of the room's own: trunks are off here, or the
	// origin does not serve them (an older version, during a rolling
	// upgrade, or trunks off there).
	pub, err := r.m.engine.NewRelayIn("", sfu.PublisherEvents{
		OnTrack:      func(t *sfu.Track) { r.addRelayed(er, t) },
		OnTrackEnded: func(t *sfu.Track) { r.removeRelayed(er, t) },
		OnFailed:     func() { go er.fail() },
	})
	if err != nil {
		return err
	}
	er.pub = pub
	offer, err := pub.OfferRelay(ctx, kinds[0], kinds[1])
	if err == nil {
		var answer string
		answer, er.hangUp, err = r.m.opt.RelayDial(ctx, *node, r.name, ids, offer)
		if err == nil {
			err = pub.AcceptRelayAnswer(answer)
		}
	}
	if err != nil {
		_ = pub.Close()
		if er.hangUp != nil {
			er.hangUp()
		}
		return err
	}
	r.mu.Lock()
	if r.relay.relays == nil {
		r.relay.relays = map[string]*edgeRelay{}
	}
	r.relay.relays[origin] = er
	r.mu.Unlock()
	r.m.relaysConnected.Add(1)
	r.m.log.Info("relay connected", "room", r.name, "origin", origin, "tracks", len(ids))
	return nil
}

// addRelayed makes a relayed track a published track of the room (or the
// new copy of one, whose viewers move to it) and subscribes the
// participants that want it.
func (r *Room) addRelayed(er *edgeRelay, t *sfu.Track) {
	id := t.Info().ID
	var info TrackInfo
	known := false
	for _, rt := range r.RemoteTracks() {
		if rt.Info.ID == id {
			info, known = rt.Info, true
		}
	}
	if !known {
		return // unpublished meanwhile: the origin ends it
	}
	owner := er.owner(info.ParticipantID)
	key := trackKey(r.remoteIdentity(info.ParticipantID), info.Kind, info.Source, info.Name)
	r.mu.Lock()
	e := r.tracks[id]
	var moved, subscribe []*Participant
	var prev *edgeRelay
	var rekey string // a lost copy this track replaces
	switch {
	case e != nil && e.relay != nil && e.relay.gen > er.gen:
		// An older relay's copy arriving after the newer one's: the newer
		// stays (the older relay is being closed).
		r.mu.Unlock()
		return
	case e != nil && e.relay != nil:
		// A new relay's copy replaces the old one's: the relay was
		// extended, reconnected, or the track moved to another origin.
		prev = e.relay
		e.track, e.relay, e.owner, e.info, e.key = t, er, owner, info, key
		for _, p := range r.everyone {
			moved = append(moved, p)
		}
	case e != nil:
		r.mu.Unlock()
		return // published here (the broadcaster moved to this node)
	default:
		r.tracks[id] = &published{track: t, info: info, owner: owner, relay: er, key: key}
		r.tracksChangedLocked()
		for _, p := range r.everyone {
			if p.wantsAll() || p.wantRemote[id] {
				subscribe = append(subscribe, p)
			}
		}
		rekey = r.replacedLocked(id, key)
	}
	r.mu.Unlock()
	if rekey != "" {
		// The broadcast came back under new ids (its broadcaster
		// published again on a node that did not know the old ones): the
		// WHEP players of the lost copy, which cannot renegotiate, move
		// onto the new one. The lost copy itself stays until its grace
		// ends, for the clients that subscribe by id.
		for _, p := range r.list() {
			p.mu.Lock()
			sub := p.subscriber
			p.mu.Unlock()
			if sub != nil && p.watching.Load() {
				_, _ = sub.Rekey(rekey, t)
			}
		}
	}
	for _, p := range moved {
		p.mu.Lock()
		sub := p.subscriber
		p.mu.Unlock()
		if sub != nil {
			_, _ = sub.Reanchor(id, t)
		}
	}
	for _, p := range subscribe {
		p.autoSubscribe(&published{track: t, info: info, owner: owner})
	}
	if prev != nil && prev.origin != er.origin {
		r.closeIfUnused(prev) // the track moved to another origin
	}
	er.mu.Lock()
	er.arrived++
	done := er.arrived == len(er.ids)
	old := er.old
	if done {
		er.old = nil
	}
	er.mu.Unlock()
	if done && old != nil {
		go old.close()
	}
}

// replacedLocked returns the id of the room's copy of a track of a lost
// origin that the relayed track id, with republish key key, replaces: the
// same broadcast published anew under a new id. r.mu is held.
func (r *Room) replacedLocked(id, key string) string {
	if key == "" {
		return ""
	}
	for old, e := range r.tracks {
		if old != id && e.relay != nil && e.key == key && r.isLost(old) {
			return old
		}
	}
	return ""
}

// removeRelayed handles a relayed track that ended. Clients are not told
// (the origin's cluster events tell them when the track really ends).
// When this node closed the relay, the copy is forgotten: its local viewers
// are unsubscribed, and WHEP players left with nothing end. When the
// connection was lost, the copy stays with its viewers, waiting: a new relay
// is tried, and the copy is dropped when the track is unpublished or its
// origin's grace period passes (originlost.go).
func (r *Room) removeRelayed(er *edgeRelay, t *sfu.Track) {
	er.mu.Lock()
	lost := !er.closed || er.lost
	er.mu.Unlock()
	if lost {
		// Not inline: this runs on one of the relay's track goroutines,
		// which closing its connection waits for. (After Close began, Close
		// closes the relays itself.)
		r.m.goRelay(er.fail)
		return
	}
	r.forgetRelayed(t.Info().ID, func(e *published) bool { return e.track == t }) // else replaced by a newer relay's copy
}

// closeIfUnused closes er when none of the room's tracks comes from it any
// more (they moved to another origin, or were taken over by a broadcaster
// who moved here), so its origin stops sending at once.
func (r *Room) closeIfUnused(er *edgeRelay) {
	er.mu.Lock()
	complete := er.arrived == len(er.ids)
	er.mu.Unlock()
	if !complete {
		return // tracks still on their way: not done with
	}
	r.mu.Lock()
	for _, e := range r.tracks {
		if e.relay == er {
			r.mu.Unlock()
			return
		}
	}
	r.mu.Unlock()
	r.m.log.Info("relay closed: its tracks moved", "room", r.name, "origin", er.origin)
	er.close()
}

// forgetRelayed removes the relayed copy id when match says so, unsubscribing
// the local participants; WHEP players left with nothing end.
func (r *Room) forgetRelayed(id string, match func(*published) bool) {
	r.mu.Lock()
	e := r.tracks[id]
	if e == nil || e.relay == nil || !match(e) {
		r.mu.Unlock()
		return
	}
	delete(r.tracks, id)
	r.tracksChangedLocked()
	others := slices.Clone(r.everyone)
	r.mu.Unlock()
	if er := e.relay; er.trunk != nil {
		er.trunk.forget(er, id) // the origin stops sending it
	}
	for _, p := range others {
		p.unsubscribeTrack(id)
	}
	endEmptyWatchers(others)
}

// dropRemoteTrack removes the local copy of a remote track that was
// unpublished on its origin.
func (r *Room) dropRemoteTrack(id string) {
	r.forgetRelayed(id, func(*published) bool { return true })
}

// close closes the relay because this node no longer needs it (no viewer
// left, replaced by a new relay, the room removed): its copies are forgotten.
func (er *edgeRelay) close() { er.end(false) }

// fail closes the relay whose connection or origin was lost: its copies
// stay, and a new relay is tried while the tracks are needed.
func (er *edgeRelay) fail() { er.end(true) }

func (er *edgeRelay) end(lost bool) {
	er.mu.Lock()
	if er.closed {
		er.mu.Unlock()
		return
	}
	er.closed, er.lost = true, lost
	old := er.old
	er.old = nil
	er.mu.Unlock()
	r := er.r
	r.mu.Lock()
	if r.relay.relays[er.origin] == er {
		delete(r.relay.relays, er.origin)
	}
	r.mu.Unlock()
	if er.pub != nil {
		_ = er.pub.Close() // its tracks end: removeRelayed
	}
	if er.hangUp != nil {
		er.hangUp()
	}
	if et := er.trunk; et != nil {
		if lost {
			// The trunk or the origin was lost: the trunk goes (every
			// room's relay on it asks again, on a new one), the copies
			// stay with their viewers.
			et.drop(er)
			et.fail("a relay on it was lost")
		} else {
			et.release(er) // its copies are forgotten; the origin stops sending them
		}
	}
	if old != nil {
		old.close()
	}
	if lost {
		r.m.log.Info("relay lost", "room", r.name, "origin", er.origin)
		time.AfterFunc(relayRetry, func() {
			if !r.m.isDraining() {
				r.demandRelays(false)
			}
		})
	}
}

// relayViewersChanged closes the room's relays RelayGrace after its last
// local viewer left, and keeps them when one comes back.
func (r *Room) relayViewersChanged() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.relay.relays) == 0 {
		return
	}
	if r.viewers > 0 {
		if r.relay.timer != nil {
			r.relay.timer.Stop()
			r.relay.timer = nil
		}
		return
	}
	if r.relay.timer == nil {
		r.relay.timer = time.AfterFunc(r.m.opt.RelayGrace, r.closeIdleRelays)
	}
}

func (r *Room) closeIdleRelays() {
	r.mu.Lock()
	r.relay.timer = nil
	if r.viewers > 0 {
		r.mu.Unlock()
		return
	}
	list := make([]*edgeRelay, 0, len(r.relay.relays))
	for _, er := range r.relay.relays {
		list = append(list, er)
	}
	r.mu.Unlock()
	for _, er := range list {
		r.m.log.Info("relay closed: no viewer left", "room", r.name, "origin", er.origin)
		er.close()
	}
}

// closeRelays closes every relay of the room (the room is removed or the
// node drains).
func (r *Room) closeRelays() {
	r.mu.Lock()
	if r.relay.timer != nil {
		r.relay.timer.Stop()
		r.relay.timer = nil
	}
	list := make([]*edgeRelay, 0, len(r.relay.relays))
	for _, er := range r.relay.relays {
		list = append(list, er)
	}
	r.mu.Unlock()
	for _, er := range list {
		er.close()
	}
}

// ServeRelay is the origin's side of a relay: node from asks for the tracks
// ids of room with a receive-only offer. The relay joins the room as a
// hidden participant (not a viewer) whose connection carries those tracks;
// it returns the answer. The participant leaves when the relay's connection
// ends, and is ended by the room when the tracks are unpublished for good.
func (m *Manager) ServeRelay(ctx context.Context, roomName, from string, ids []string, offer string) (answer, id string, err error) {
	r := m.Room(roomName)
	if r == nil {
		return "", "", ErrNoTracks
	}
	var tracks []*sfu.Track
	r.mu.Lock()
	for _, id := range ids {
		e := r.tracks[id]
		if e == nil || e.relay != nil {
			r.mu.Unlock()
			return "", "", fmt.Errorf("%w: %q is not published on this node", ErrUnknownTrack, id)
		}
		tracks = append(tracks, e.track)
	}
	r.mu.Unlock()
	if len(tracks) == 0 {
		return "", "", ErrNoTracks
	}
	p, err := m.Join(roomName, ParticipantSpec{Identity: "relay:" + from, Subscribe: true, Hidden: true, LeaveOnFailure: true, Relay: true}, nopSink{})
	if err != nil {
		return "", "", err
	}
	var sub *sfu.Subscriber
	sub, err = m.engine.NewRelayOut(sfu.SubscriberEvents{OnFailed: func() { p.subscriberFailed(sub) }})
	if err != nil {
		p.End()
		return "", "", err
	}
	p.mu.Lock()
	p.subscriber = sub // not a viewer: the edge counts its own
	p.mu.Unlock()
	answer, err = sub.AnswerOffer(ctx, offer, tracks)
	if err != nil {
		p.End()
		return "", "", err
	}
	m.log.Info("relay served", "room", roomName, "to", from, "tracks", len(tracks))
	return answer, p.id, nil
}

// EndRelay ends the relay id (from ServeRelay) of room, at the edge's
// request. It reports whether there was one.
func (m *Manager) EndRelay(roomName, id string) bool {
	r := m.Room(roomName)
	if r == nil {
		return false
	}
	r.mu.Lock()
	p := r.participants[id]
	r.mu.Unlock()
	if p == nil || !p.spec.Relay {
		return false
	}
	p.End()
	return true
}

// relaysPending reports whether a remote track is on its way through a
// relay (a WHEP player waits for it, as for a starting broadcaster).
func (r *Room) relaysPending() bool {
	if r.m.cluster == nil {
		return false
	}
	remote := r.RemoteTracks()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range remote {
		if e := r.tracks[t.Info.ID]; e == nil {
			return true
		}
	}
	return false
}

// relayedIDs lists the room's relayed tracks.
func (r *Room) relayedIDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for id, t := range r.tracks {
		if t.relay != nil {
			ids = append(ids, id)
		}
	}
	return ids
}

// isRemoteTrack reports whether id is published on another node, or was
// and is kept for its broadcaster's return.
func (r *Room) isRemoteTrack(id string) bool {
	for _, t := range r.RemoteTracks() {
		if t.Info.ID == id {
			return true
		}
	}
	return r.isLost(id)
}

// waitLinked waits (at most d) until the room has read the other nodes'
// state once, so a WHEP player arriving on a node new to the room finds the
// tracks published elsewhere.
func (r *Room) waitLinked(ctx context.Context, d time.Duration) {
	if r.m.cluster == nil {
		return
	}
	r.mu.Lock()
	gone := r.gone
	r.mu.Unlock()
	if gone {
		return
	}
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	select {
	case <-r.remote.seededOrGone():
	case <-ctx.Done():
	case <-deadline.C:
	}
}

// RelayActive reports whether the relay id (a participant ServeRelay
// created for another node) is still in the room: it leaves when its
// connection ends, however it ends.
func (r *Room) RelayActive(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.participants[id]
	return p != nil && p.spec.Relay
}
