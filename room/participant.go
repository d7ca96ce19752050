package room

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/halobuzz/live/internal/id"
	"github.com/halobuzz/live/sfu"
	"github.com/pion/webrtc/v4"
)

// ParticipantSpec is who joins and what their token allows.
type ParticipantSpec struct {
	Identity  string
	Name      string
	Publish   bool // may publish tracks
	Subscribe bool // may receive tracks
	// Hidden participants are not announced to others nor listed in
	// snapshots; they still receive room events (a broadcaster's dashboard).
	Hidden bool
	// LeaveOnFailure removes the participant when a media connection fails
	// (WHIP/WHEP sessions, which have no other channel).
	LeaveOnFailure bool
	// Relay is another node pulling the room's tracks (ServeRelay): hidden,
	// not a viewer, not written to the store as a participant.
	Relay bool
}

// ErrNoTracks is returned to a WHEP viewer of a room with nothing published.
var ErrNoTracks = errors.New("room: nothing is published in the room")

// Participant is one client in a room, with up to two media connections.
type Participant struct {
	id   string
	room *Room
	spec ParticipantSpec
	sink EventSink

	mu sync.Mutex // serialises connection set-up and teardown
	// publisher and subscriber are written holding mu and the room's mu,
	// so either lock is enough to read them.
	publisher  *sfu.Publisher
	subscriber *sfu.Subscriber
	// pending ends the subscriber connection when it is not up within
	// pendingTimeout of its first offer or answer (a session that never
	// connects); nil once it connected.
	pending    *time.Timer
	connected  bool         // the subscriber connection came up (guarded by mu)
	offered    atomic.Int32 // media sections the last publish offer sends
	mayPublish atomic.Bool  // the token's grants, changed by SetGrants
	maySub     atomic.Bool
	all        atomic.Bool // subscribed to every track, present and future
	// watching: a WHEP player of the room's broadcast. It cannot add
	// tracks (no renegotiation), but it wants the broadcast wherever it is
	// published: the room relays it from any origin, and a broadcast
	// published anew under other ids is moved onto its connection.
	watching   atomic.Bool
	left       atomic.Bool
	deliberate atomic.Bool // left on purpose (End): its tracks end at once
	joinLogged atomic.Bool // its join was logged at info (joinlog.go)

	// joinedState is the room as it was when the participant joined: every
	// event its sink gets is a change after it.
	joinedState State
	joinedAt    time.Time // when it joined (ParticipantRecord.JoinedAt)

	// Guarded by room.mu.
	wantRemote map[string]bool // tracks of other nodes subscribed to by id (relay.go)

	// Simulcast caps (SetLayer), applied to the subscriber when it exists.
	layerMu      sync.Mutex
	layerCaps    map[string]int
	defaultLayer int
	layerSet     bool // defaultLayer was set
	slot         int  // index in room.everyone
	onStage      bool // announced to the room: it published
	viewer       bool // counted in the room's viewers
}

func newParticipant(r *Room, spec ParticipantSpec, sink EventSink) *Participant {
	p := &Participant{id: id.New("p_"), room: r, spec: spec, sink: sink, joinedAt: time.Now()}
	p.mayPublish.Store(spec.Publish)
	p.maySub.Store(spec.Subscribe)
	return p
}

// ID returns the participant's id.
func (p *Participant) ID() string { return p.id }

// role names what the participant's token lets it do, for logs: a
// "publisher" may publish (and usually watches too), a "viewer" only
// watches.
func (p *Participant) role() string {
	if p.spec.Publish {
		return "publisher"
	}
	return "viewer"
}

// Room returns the participant's room.
func (p *Participant) Room() *Room { return p.room }

// JoinedState returns the room as it was at the moment the participant
// joined (taken under the same lock as the join): the events its sink
// receives are exactly the changes since.
func (p *Participant) JoinedState() State { return p.joinedState }

// Info describes the participant to clients.
func (p *Participant) Info() ParticipantInfo {
	return ParticipantInfo{ID: p.id, Identity: p.spec.Identity, Name: p.spec.Name, Publisher: p.spec.Publish}
}

func (p *Participant) wantsAll() bool { return p.all.Load() && !p.left.Load() }

// wantsRemote reports whether the participant wants every track of the
// room relayed from other nodes: it subscribed to everything, or it watches
// the broadcast (WHEP).
func (p *Participant) wantsRemote() bool {
	return (p.all.Load() || p.watching.Load()) && !p.left.Load()
}

// Publish applies a publisher offer (first or renegotiation) and returns the
// answer. With complete, the answer carries every ICE candidate (WHIP).
func (p *Participant) Publish(ctx context.Context, offer string, meta map[string]TrackMeta, complete bool) (string, error) {
	if !p.mayPublish.Load() {
		return "", fmt.Errorf("%w: publish", ErrForbidden)
	}
	if err := p.room.m.checkBroadcastBan(p.room.name); err != nil {
		return "", err
	}
	opt := p.room.m.opt
	info, err := sfu.CheckOffer(offer, sfu.OfferLimits{MaxBytes: opt.Limits.MaxSDPBytes, MaxSections: opt.Limits.MaxMediaSections})
	if err != nil {
		return "", err
	}
	if max := opt.Limits.TracksPerParticipant; max > 0 && info.SendTracks > max {
		return "", fmt.Errorf("%w: %d tracks offered, at most %d allowed", ErrTooManyTracks, info.SendTracks, max)
	}
	if info.SendTracks == 0 {
		return "", fmt.Errorf("%w: the offer sends no audio or video", sfu.ErrInvalidSDP)
	}
	p.offered.Store(int32(info.SendTracks))
	p.room.tracksChanged()
	p.mu.Lock()
	if p.left.Load() {
		p.mu.Unlock()
		return "", ErrLeft
	}
	pub := p.publisher
	fresh := pub == nil
	if fresh {
		var created *sfu.Publisher
		ev := sfu.PublisherEvents{
			OnCandidate:  func(c webrtc.ICECandidateInit) { p.sink.Event(Candidate{Target: "publisher", Candidate: c}) },
			TrackID:      func(info sfu.TrackInfo) string { return p.room.claimRepublish(p, info) },
			OnTrack:      func(t *sfu.Track) { p.room.addTrack(p, t) },
			OnTrackEnded: func(t *sfu.Track) { p.room.trackEnded(p, t) },
			OnFailed:     func() { p.publisherFailed(created) },
		}
		if ls, ok := p.sink.(LayerSink); ok && ls.CanPauseLayers() {
			ev.OnLayers = func(t *sfu.Track, active []string) {
				i := t.Info()
				p.sink.Event(LayersWanted{TrackID: i.ID, ClientTrackID: i.ClientID, Active: active})
			}
		}
		created, err = p.room.m.engine.NewPublisher(p.id, ev)
		pub = created
		if err != nil {
			p.mu.Unlock()
			return "", err
		}
		p.room.mu.Lock() // Manager.Stats reads it under the room's lock
		p.publisher = pub
		p.room.mu.Unlock()
	}
	p.mu.Unlock()
	answer, err := pub.HandleOffer(ctx, offer, mediaMeta(meta), complete)
	if err == nil {
		p.logAnswered()
	}
	if err != nil && fresh {
		// A first offer that Pion refused half-way leaves the connection
		// where no later offer applies: discard it, so the next publish
		// starts on a fresh one.
		p.mu.Lock()
		if p.publisher == pub {
			p.publisher = nil
		}
		p.mu.Unlock()
		_ = pub.Close()
	}
	return answer, err
}

// AddCandidate adds a client ICE candidate to the publisher or subscriber connection.
func (p *Participant) AddCandidate(target string, c webrtc.ICECandidateInit) error {
	p.mu.Lock()
	pub, sub := p.publisher, p.subscriber
	p.mu.Unlock()
	switch target {
	case "publisher":
		if pub == nil {
			return fmt.Errorf("%w: no publisher connection", sfu.ErrInvalidCandidate)
		}
		return pub.AddCandidate(c)
	case "subscriber":
		if sub == nil {
			return fmt.Errorf("%w: no subscriber connection", sfu.ErrInvalidCandidate)
		}
		return sub.AddCandidate(c)
	}
	return fmt.Errorf("%w: target must be publisher or subscriber", sfu.ErrInvalidCandidate)
}

// Subscribe subscribes to the tracks named by ids, or to every track of the
// room, now and later, when ids is empty. Unknown ids fail the whole call.
func (p *Participant) Subscribe(ids []string) error {
	if !p.maySub.Load() {
		return fmt.Errorf("%w: subscribe", ErrForbidden)
	}
	r := p.room
	var list []*published
	r.mu.Lock()
	if len(ids) == 0 {
		p.all.Store(true)
		for _, t := range r.tracks {
			if t.owner != p {
				list = append(list, t)
			}
		}
	} else {
		remote := map[string]bool{}
		for _, t := range r.RemoteTracks() {
			remote[t.Info.ID] = true
		}
		for _, id := range ids {
			t, ok := r.tracks[id]
			if !ok && remote[id] {
				// Another node's track: it comes through a relay.
				if p.wantRemote == nil {
					p.wantRemote = map[string]bool{}
				}
				p.wantRemote[id] = true
				continue
			}
			if !ok {
				r.mu.Unlock()
				return fmt.Errorf("%w: %q", ErrUnknownTrack, id)
			}
			if t.owner != p {
				list = append(list, t)
			}
		}
	}
	r.mu.Unlock()
	if err := p.subscribeTracks(list); err != nil {
		return err
	}
	if len(ids) == 0 && len(list) == 0 {
		p.waiting()
	}
	r.demandRelays(false)
	return nil
}

// waiting counts p, subscribed to everything in a room with nothing to
// receive yet, in the audience: it waits for the broadcast. Once media is
// offered to it, it stays counted only if its connection comes up within
// pendingTimeout (armPending).
func (p *Participant) waiting() {
	p.mu.Lock()
	sub := p.subscriber
	p.mu.Unlock()
	if sub == nil || sub.Offered() {
		return
	}
	p.room.mu.Lock()
	changed := !p.viewer
	p.room.setViewerLocked(p, true)
	p.room.mu.Unlock()
	if changed {
		p.room.viewersChanged()
	}
}

func (p *Participant) subscribeTracks(list []*published) error {
	sub, _, err := p.ensureSubscriber()
	if err != nil {
		return err
	}
	for _, t := range list {
		if err := sub.AddTrack(t.track); err != nil {
			return err
		}
	}
	return nil
}

// autoSubscribe subscribes p to a track that started (or moved) while p
// watches everything. A failure is not the caller's to handle (the track
// is there for the others) but is never silent: a participant that left
// meanwhile is normal; a session that takes no new track (a WHEP viewer
// handed over from Pion watches the tracks it asked for) is logged at
// debug; anything else at warn.
func (p *Participant) autoSubscribe(t *published) {
	err := p.subscribeTracks([]*published{t})
	switch {
	case err == nil, errors.Is(err, ErrLeft):
	case errors.Is(err, ErrMediaClosed):
		p.room.m.log.Debug("subscription: the session takes no new track", "room", p.room.name,
			"participant", p.id, "track", t.info.ID, "err", err)
	default:
		p.room.m.log.Warn("subscription failed: the participant does not get the track", "room", p.room.name,
			"participant", p.id, "track", t.info.ID, "err", err)
	}
}

func (p *Participant) ensureSubscriber() (*sfu.Subscriber, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.left.Load() {
		return nil, false, ErrLeft
	}
	if p.subscriber != nil {
		return p.subscriber, false, nil
	}
	var sub *sfu.Subscriber
	newSub := p.room.m.engine.NewSubscriber
	if p.room.hasSimulcast() {
		newSub = p.room.m.engine.NewSimulcastSubscriber
	}
	sub, err := newSub(sfu.SubscriberEvents{
		OnOffer: func(sdp string) {
			p.armPending(sub)
			p.sink.Event(Offer{SDP: sdp})
		},
		OnCandidate: func(c webrtc.ICECandidateInit) { p.sink.Event(Candidate{Target: "subscriber", Candidate: c}) },
		OnFailed:    func() { p.subscriberFailed(sub) },
		OnConnected: func() { p.subscriberConnected(sub) },
	})
	if err != nil {
		return nil, false, err
	}
	p.layerMu.Lock()
	if p.layerSet {
		sub.SetDefaultLayer(p.defaultLayer)
	}
	for id, c := range p.layerCaps {
		sub.SetLayer(id, c)
	}
	p.layerMu.Unlock()
	p.room.mu.Lock()
	p.subscriber = sub // a viewer once its connection is up (subscriberConnected)
	p.room.mu.Unlock()
	return sub, true, nil
}

// pendingTimeout is how long a viewer's media connection may take to come
// up after the server's first offer or answer: a session that never
// connects (a bot's, or a player that went away) is ended then, and was
// never counted in the audience.
const pendingTimeout = 10 * time.Second

// armPending starts sub's pending timer, unless it runs or sub is up.
func (p *Participant) armPending(sub *sfu.Subscriber) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.subscriber != sub || p.pending != nil || p.connected {
		return
	}
	p.pending = time.AfterFunc(pendingTimeout, func() { p.pendingExpired(sub) })
}

// pendingExpired ends sub, which did not connect in time, as a failure.
func (p *Participant) pendingExpired(sub *sfu.Subscriber) {
	p.mu.Lock()
	up := p.connected || p.subscriber != sub
	p.mu.Unlock()
	if up {
		return
	}
	p.room.m.log.Info("a viewer's media connection did not come up in time", "room", p.room.name,
		"participant", p.id, "waited", pendingTimeout)
	sub.SetupTimedOut()
	p.subscriberFailed(sub)
}

// subscriberConnected counts p in the audience: its media connection is up.
func (p *Participant) subscriberConnected(sub *sfu.Subscriber) {
	p.mu.Lock()
	if p.subscriber != sub || p.left.Load() {
		p.mu.Unlock()
		return
	}
	if p.pending != nil {
		p.pending.Stop()
		p.pending = nil
	}
	p.connected = true
	p.room.mu.Lock()
	p.room.setViewerLocked(p, true)
	p.room.mu.Unlock()
	p.mu.Unlock()
	p.room.viewersChanged()
	p.sink.Event(MediaConnected{Target: "subscriber"})
}

// SetLayer caps the simulcast layer the participant receives of track id
// (sfu.LayerLow, LayerMedium, LayerHigh). It reports whether the track is
// subscribed and sent in layers now.
func (p *Participant) SetLayer(id string, cap int) (bool, error) {
	if p.room.track(id) == nil {
		return false, fmt.Errorf("%w: %q", ErrUnknownTrack, id)
	}
	p.layerMu.Lock()
	if p.layerCaps == nil {
		p.layerCaps = map[string]int{}
	}
	p.layerCaps[id] = cap
	p.layerMu.Unlock()
	p.mu.Lock()
	sub := p.subscriber
	p.mu.Unlock()
	if sub == nil {
		return false, nil
	}
	return sub.SetLayer(id, cap), nil
}

// ViewerStats returns the participant's bandwidth estimate and simulcast
// layers (zero before it receives anything).
func (p *Participant) ViewerStats() ViewerStats {
	p.mu.Lock()
	sub := p.subscriber
	p.mu.Unlock()
	if sub == nil {
		return ViewerStats{Layers: map[string]string{}}
	}
	st := sub.Stats()
	return ViewerStats{BandwidthEstimate: st.BandwidthEstimate, Layers: st.Layers}
}

// SetDefaultLayer caps the simulcast layer of every track the participant
// receives without a cap of its own (a WHEP player's ?layer=).
func (p *Participant) SetDefaultLayer(cap int) {
	p.layerMu.Lock()
	p.defaultLayer, p.layerSet = cap, true
	p.layerMu.Unlock()
}

// Unsubscribe stops the tracks named by ids (and ends subscribe-to-all).
func (p *Participant) Unsubscribe(ids []string) error {
	p.all.Store(false)
	for _, id := range ids {
		if p.room.track(id) == nil {
			return fmt.Errorf("%w: %q", ErrUnknownTrack, id)
		}
	}
	for _, id := range ids {
		p.unsubscribeTrack(id)
	}
	return nil
}

func (p *Participant) unsubscribeTrack(id string) {
	p.mu.Lock()
	sub := p.subscriber
	p.mu.Unlock()
	if sub != nil {
		_ = sub.RemoveTrack(id)
	}
}

// Answer applies the client's answer to the server's subscriber offer.
func (p *Participant) Answer(sdp string) error {
	p.mu.Lock()
	sub := p.subscriber
	p.mu.Unlock()
	if sub == nil {
		return ErrNoSubscription
	}
	return sub.HandleAnswer(sdp)
}

// Watch is the WHEP flow: answer a receive-only offer with the room's main
// video track (or the one named by want, by id or name) and its publisher's
// audio.
func (p *Participant) Watch(ctx context.Context, offer string, want string) (string, error) {
	if !p.maySub.Load() {
		return "", fmt.Errorf("%w: subscribe", ErrForbidden)
	}
	opt := p.room.m.opt
	info, err := sfu.CheckOffer(offer, sfu.OfferLimits{MaxBytes: opt.Limits.MaxSDPBytes, MaxSections: opt.Limits.MaxMediaSections})
	if err != nil {
		return "", err
	}
	if info.RecvTracks == 0 {
		return "", fmt.Errorf("%w: the offer receives no audio or video", sfu.ErrInvalidSDP)
	}
	r := p.room
	r.waitLinked(ctx, watchWait)
	// A WHEP player watches the room's broadcast, wherever it is published,
	// now and after a failover (relay.go).
	p.watching.Store(true)
	r.demandRelays(false)
	// A broadcaster starting this very moment: its offer announced tracks
	// that have not arrived yet. WHEP cannot add them later, so wait a
	// little for them rather than answer with part of the broadcast,
	// looking again each time the room's tracks change.
	deadline := time.NewTimer(watchWait)
	defer deadline.Stop()
	var tracks []*sfu.Track
	for expired := false; ; {
		changed := r.tracksChange()
		tracks, err = r.watchTracks(want)
		if expired || (err != nil && !errors.Is(err, ErrNoTracks)) || !(r.tracksPending() || r.relaysPending()) {
			break
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-changed:
		case <-deadline.C:
			expired = true // one last look
		}
	}
	if err != nil {
		return "", err
	}
	sub, _, err := p.ensureSubscriber()
	if err != nil {
		return "", err
	}
	answer, err := sub.AnswerOffer(ctx, offer, tracks)
	if err == nil {
		p.armPending(sub)
		p.logAnswered()
	}
	return answer, err
}

// Chat sends a chat message to everyone in the room, the sender included,
// under the sender's name (from its token). It fails with
// ErrRoomRateLimited when the room is over its message rate.
func (p *Participant) Chat(text string) error {
	return p.room.message(Chat{ParticipantID: p.id, Identity: p.spec.Identity, Name: p.spec.Name, Text: text})
}

// React sends a reaction (an emoji) to everyone in the room. Reactions share
// the room's message rate with chat.
func (p *Participant) React(emoji string) error {
	return p.room.message(Reaction{ParticipantID: p.id, Identity: p.spec.Identity, Name: p.spec.Name, Emoji: emoji})
}

// ErrMediaFailed is the reason of a MediaFailed event.
var ErrMediaFailed = errors.New("room: media connection failed")

// publisherFailed releases a publisher connection that failed (ICE or DTLS):
// its tracks end and viewers are told. A WHIP session ends; a WebSocket
// client is told and may publish again on a new connection.
func (p *Participant) publisherFailed(pub *sfu.Publisher) {
	if p.left.Load() || p.spec.LeaveOnFailure {
		p.failedSession()
		return
	}
	p.mu.Lock()
	current := p.publisher == pub && pub != nil
	if current {
		p.room.mu.Lock()
		p.publisher = nil
		p.room.mu.Unlock()
	}
	p.mu.Unlock()
	if !current {
		return // closed on purpose, or already replaced
	}
	p.logFailure("publisher")
	_ = pub.Close()
	p.sink.Event(MediaFailed{Target: "publisher"})
}

// subscriberFailed releases a subscriber connection that failed: its
// down-tracks stop costing anything at once, and the client is told so it
// can subscribe again (on a new connection).
func (p *Participant) subscriberFailed(sub *sfu.Subscriber) {
	if p.left.Load() || p.spec.LeaveOnFailure {
		p.failedSession()
		return
	}
	p.mu.Lock()
	current := p.subscriber == sub && sub != nil
	if current {
		p.room.mu.Lock()
		p.subscriber = nil
		p.room.setViewerLocked(p, false)
		p.room.mu.Unlock()
		p.all.Store(false)
		p.connected = false
		if p.pending != nil {
			p.pending.Stop()
			p.pending = nil
		}
	}
	p.mu.Unlock()
	if !current {
		return
	}
	p.logFailure("subscriber")
	_ = sub.Close()
	p.room.viewersChanged()
	p.sink.Event(MediaFailed{Target: "subscriber"})
}

// logFailure logs, at info, that a media connection failed (ICE or DTLS
// gave up: the client's network, mostly), which Pion itself reports only
// at debug.
func (p *Participant) logFailure(connection string) {
	p.room.m.log.Info("media connection failed", "room", p.room.name, "participant", p.id, "role", p.role(), "connection", connection)
}

// failedSession ends a WHIP/WHEP participant whose only connection failed.
func (p *Participant) failedSession() {
	if p.spec.LeaveOnFailure && !p.left.Load() {
		p.logFailure("session")
		p.sink.Event(Closed{Reason: ErrMediaFailed})
		p.Leave()
	}
}

// lostTrack reports whether t is ending because p's connection was lost
// rather than by choice (a leave, a WHIP DELETE, a renegotiation that
// stopped it).
func (p *Participant) lostTrack(t *sfu.Track) bool {
	return !t.Removed() && !p.deliberate.Load()
}

// End removes the participant on purpose (a leave message, a WHIP DELETE,
// the broadcast ending for a WHEP viewer): its tracks end at once instead of
// waiting for a republish.
func (p *Participant) End() {
	p.deliberate.Store(true)
	if !p.left.Load() {
		// Tracks kept since its connection dropped (a client that closed
		// its peer connection before it said leave) end now too.
		p.room.endOrphansOf(p)
	}
	p.Leave()
}

// Goodbye ends the participant because its client said so (a leave
// message, a WHIP DELETE). A publisher's last packets, sent just before,
// reach its viewers first: the connection closes once its tracks have
// been quiet for goodbyeQuiet, or after goodbyeLimit at most.
func (p *Participant) Goodbye() {
	p.mu.Lock()
	pub := p.publisher
	p.mu.Unlock()
	if pub != nil && !p.left.Load() {
		pub.Settle(goodbyeQuiet, goodbyeLimit)
	}
	p.End()
}

// A publisher's packets come every 20 ms (audio) to 33 ms (video at 30
// frames per second): 100 ms without one means it has stopped.
const (
	goodbyeQuiet = 100 * time.Millisecond
	goodbyeLimit = 500 * time.Millisecond
)

// Leave removes the participant because its client went away (a closed
// socket, a failed session): its tracks end, its viewers are told, its
// connections close; tracks are kept for a republish first (republish.go).
// It is safe to call more than once.
func (p *Participant) Leave() {
	if p.left.Swap(true) {
		return
	}
	p.mu.Lock()
	pub, sub := p.publisher, p.subscriber
	if p.pending != nil {
		p.pending.Stop()
		p.pending = nil
	}
	p.mu.Unlock()
	// Tracks end first (others get track_unpublished), then the participant
	// leaves (participant_left): clients never hold a track whose
	// participant they were told is gone.
	if pub != nil {
		_ = pub.Close()
	}
	if sub != nil {
		_ = sub.Close()
	}
	p.room.leave(p)
}

// ICE of a WHIP/WHEP session: the connection the client offered.
func (p *Participant) offeredConn() (interface {
	RestartICE(context.Context, string, string) (sfu.ICEFragment, error)
	AddCandidate(webrtc.ICECandidateInit) error
	RemoteUfrag() string
}, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.publisher != nil {
		return p.publisher, "publisher"
	}
	if p.subscriber != nil {
		return p.subscriber, "subscriber"
	}
	return nil, ""
}

// PatchICE applies a WHIP/WHEP trickle or ICE restart: with credentials that
// differ from the current ones it restarts ICE and returns the server's new
// fragment (restarted=true); otherwise it adds the candidates.
func (p *Participant) PatchICE(ctx context.Context, frag ICEFragment, mid string) (ICEFragment, bool, error) {
	conn, _ := p.offeredConn()
	if conn == nil {
		return ICEFragment{}, false, ErrNoSubscription
	}
	if frag.Ufrag != "" && frag.Ufrag != conn.RemoteUfrag() {
		out, err := conn.RestartICE(ctx, frag.Ufrag, frag.Pwd)
		if err != nil {
			return ICEFragment{}, false, err
		}
		for _, c := range frag.Candidates {
			_ = conn.AddCandidate(webrtc.ICECandidateInit{Candidate: c, SDPMid: &mid})
		}
		return iceFragmentOf(out), true, nil
	}
	for _, c := range frag.Candidates {
		if err := conn.AddCandidate(webrtc.ICECandidateInit{Candidate: c, SDPMid: &mid}); err != nil {
			return ICEFragment{}, false, err
		}
	}
	return ICEFragment{}, false, nil
}

// watchWait is how long a WHEP viewer waits for a starting broadcaster's video.
const watchWait = 3 * time.Second

// watchTracks picks a WHEP viewer's tracks: the main video (or the one named
// by want, by id or name) and the audio of its publisher.
func (r *Room) watchTracks(want string) ([]*sfu.Track, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	video := pickVideo(r.tracks, want)
	if want != "" && (video == nil || (video.info.ID != want && !strings.EqualFold(video.info.Name, want))) {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTrack, want)
	}
	var tracks []*sfu.Track
	var owner *Participant
	if video != nil {
		tracks = append(tracks, video.track)
		owner = video.owner
	}
	for _, t := range r.tracks {
		if t.info.Kind == "audio" && (owner == nil || t.owner == owner) {
			tracks = append(tracks, t.track)
			if owner == nil {
				owner = t.owner
			}
		}
	}
	if len(tracks) == 0 {
		return nil, ErrNoTracks
	}
	return tracks, nil
}

// tracksPending reports whether a publisher offered tracks that have not
// started yet.
func (r *Room) tracksPending() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	started := map[*Participant]int32{}
	for _, t := range r.tracks {
		started[t.owner]++
	}
	for _, p := range r.participants {
		if n := p.offered.Load(); n > 0 && started[p] < n {
			return true
		}
	}
	return false
}
