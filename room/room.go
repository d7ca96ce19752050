package room

import (
	"strings"
	"sync"
	"time"

	"github.com/halobuzz/live/sfu"
	"golang.org/x/time/rate"
)

// viewerCountInterval is the shortest gap between two viewer count events:
// however fast an audience comes and goes, each participant gets at most
// one count a second.
const viewerCountInterval = time.Second

// Room is one live room: its participants and the tracks they publish.
//
// A room is a few publishers and an audience. Publishers are announced one
// by one (participant_joined when their first track starts,
// participant_left when they go); the audience is only a count, sent at most
// once per viewerCountInterval. So a viewer joining or leaving costs the
// room O(1) work and messages, whatever its size.
type Room struct {
	m       *Manager
	name    string
	created time.Time // when this node created the room (RoomEntry.StartedAt)
	// chatLimit is the room's budget of chat messages and reactions, shared
	// by all its participants (nil: unlimited).
	chatLimit *rate.Limiter

	// sendMu orders the room's broadcasts: a change and its announcement
	// happen under it, so every participant sees the changes of the room in
	// the same order. It is taken before mu, and held while events are
	// delivered, which mu never is (a sink's Event is a non-blocking
	// enqueue, but over 10,000 participants it adds up).
	sendMu sync.Mutex

	mu           sync.Mutex
	participants map[string]*Participant
	everyone     []*Participant          // the participants, for fan-out; Participant.slot is the index
	stage        map[string]*Participant // announced participants: they published
	viewers      int                     // participants counted as viewers
	tracks       map[string]*published
	emptyTimer   *time.Timer
	vcTimer      *time.Timer
	lastVC       time.Time
	sentVC       int
	relay        relayState  // relays from other nodes (relay.go)
	remote       *remoteView // the other nodes' part of the room (remote.go)
	gone         bool        // removed from the node: the cluster's news are ignored
	// tracksMoved is closed (and forgotten) when the room's tracks change:
	// one starts or ends here, another node's are announced or relayed, a
	// publisher offers tracks or leaves. A WHEP viewer waiting for a
	// broadcast that is starting waits on it (Participant.Watch).
	tracksMoved chan struct{}
}

// tracksChangedLocked wakes whoever waits for the room's tracks to change.
// r.mu is held.
func (r *Room) tracksChangedLocked() {
	if r.tracksMoved != nil {
		close(r.tracksMoved)
		r.tracksMoved = nil
	}
}

// tracksChanged is tracksChangedLocked without the lock held.
func (r *Room) tracksChanged() {
	r.mu.Lock()
	r.tracksChangedLocked()
	r.mu.Unlock()
}

// tracksChange returns a channel closed at the room's next change of
// tracks. Take it before reading the tracks, so no change is missed.
func (r *Room) tracksChange() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tracksMoved == nil {
		r.tracksMoved = make(chan struct{})
	}
	return r.tracksMoved
}

type published struct {
	track *sfu.Track
	info  TrackInfo
	owner *Participant

	// Republishing (republish.go).
	key     string      // identity, kind, source and name
	orphan  *time.Timer // set while the track waits for its publisher to return
	claimed bool        // a new track is taking this one's place

	relay *edgeRelay // set for a copy of another node's track (relay.go)
}

func newRoom(m *Manager, name string) *Room {
	r := &Room{
		m: m, name: name, created: time.Now(), participants: map[string]*Participant{}, stage: map[string]*Participant{},
		tracks: map[string]*published{}, sentVC: -1, remote: newRemoteView(),
	}
	if perSecond := m.opt.Limits.RoomMessagesPerSecond; perSecond > 0 {
		r.chatLimit = rate.NewLimiter(rate.Limit(perSecond), m.opt.Limits.RoomMessagesBurst)
	}
	return r
}

// Name returns the room's name.
func (r *Room) Name() string { return r.name }

func (r *Room) empty() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.participants) == 0
}

func (r *Room) list() []*Participant {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*Participant(nil), r.everyone...)
}

// sinksLocked copies the sinks of everyone but skip, to deliver to after mu
// is released.
func (r *Room) sinksLocked(skip *Participant) []EventSink {
	out := make([]EventSink, 0, len(r.everyone))
	for _, p := range r.everyone {
		if p != skip {
			out = append(out, p.sink)
		}
	}
	return out
}

func deliver(sinks []EventSink, evs ...Event) {
	for _, s := range sinks {
		for _, ev := range evs {
			s.Event(ev)
		}
	}
}

// join adds a participant. Nobody is told: a participant is announced when
// it publishes, and the audience is a count. remote is the room's
// participant count on other nodes, which counts against the limit too.
func (r *Room) join(spec ParticipantSpec, sink EventSink, remote int) (*Participant, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if max := r.m.opt.Limits.ParticipantsPerRoom; max > 0 && len(r.participants)+remote >= max {
		return nil, ErrRoomFull
	}
	p := newParticipant(r, spec, sink)
	if r.emptyTimer != nil {
		r.emptyTimer.Stop()
		r.emptyTimer = nil
	}
	r.participants[p.id] = p
	p.slot = len(r.everyone)
	r.everyone = append(r.everyone, p)
	p.joinedState = r.snapshotLocked()
	if !spec.Relay { // another node's relay is not a participant of the room
		if c := r.m.cluster; c != nil {
			c.ParticipantJoined(r.name, p.record(r.m.opt.NodeID))
		}
	}
	r.observeParticipant(ParticipantJoinedHere, p, "")
	p.logJoin()
	return p, nil
}

// Snapshot returns the announced participants (those who publish) and the
// published tracks, for a joining client. Its cost does not depend on the
// size of the audience.
func (r *Room) Snapshot() ([]ParticipantInfo, []TrackInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.snapshotLocked()
	return s.Participants, s.Tracks
}

// State is what a participant is told of its room when it joins.
type State struct {
	Participants []ParticipantInfo // the announced participants (publishers)
	Tracks       []TrackInfo
	Viewers      int
}

func (r *Room) snapshotLocked() State {
	s := State{Participants: make([]ParticipantInfo, 0, len(r.stage)), Tracks: make([]TrackInfo, 0, len(r.tracks)), Viewers: r.viewers}
	for _, p := range r.stage {
		s.Participants = append(s.Participants, p.Info())
	}
	for _, t := range r.tracks {
		if t.relay == nil { // relayed copies are listed with their origin's tracks
			s.Tracks = append(s.Tracks, t.info)
		}
	}
	return r.withRemoteLocked(s)
}

// ViewerCount returns the number of viewers now: participants holding a
// subscriber connection.
func (r *Room) ViewerCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.viewers + r.remoteViewers()
}

// setViewerLocked counts p as a viewer or not; r.mu is held.
func (r *Room) setViewerLocked(p *Participant, on bool) {
	if p.viewer == on || (on && r.participants[p.id] != p) {
		return
	}
	p.viewer = on
	if on {
		r.viewers++
	} else {
		r.viewers--
	}
}

// isViewer reports whether p counts in the audience (its media connection
// is up).
func (r *Room) isViewer(p *Participant) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return p.viewer
}

// Tracks returns the published tracks.
func (r *Room) Tracks() []TrackInfo {
	_, ts := r.Snapshot()
	return ts
}

func (r *Room) track(id string) *published {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tracks[id]
}

// addTrack records a started track, tells the room (announcing its owner
// first if this is the owner's first track) and subscribes every
// auto-subscribing participant to it.
func (r *Room) addTrack(owner *Participant, t *sfu.Track) {
	si := t.Info()
	info := TrackInfo{
		ID: si.ID, ParticipantID: owner.id, Kind: si.Kind.String(), Source: si.Source,
		Name: si.Name, MID: si.MID, Codec: si.MimeType, Layers: si.Layers, Siblings: si.Siblings,
	}
	if r.republished(owner, t) {
		return
	}
	r.sendMu.Lock()
	r.mu.Lock()
	r.tracks[info.ID] = &published{track: t, info: info, owner: owner, key: republishKey(owner.spec.Identity, si)}
	r.tracksChangedLocked()
	r.forgetRemoteLocked(info.ID) // a track of another node taken over (claimRemote)
	evs := []Event{TrackPublished{Track: info}}
	if !owner.onStage && !owner.spec.Hidden && r.participants[owner.id] == owner {
		owner.onStage = true
		r.stage[owner.id] = owner
		evs = []Event{ParticipantJoined{Participant: owner.Info()}, evs[0]}
	}
	sinks := r.sinksLocked(owner)
	var subscribers []*Participant
	for _, p := range r.everyone {
		if p != owner && p.wantsAll() {
			subscribers = append(subscribers, p)
		}
	}
	r.mu.Unlock()
	deliver(sinks, evs...)
	// The record and the origin claim before the event (the cluster's one
	// ordered queue): a node that subscribes to the room after the event
	// went out reads the record.
	r.putTrack(info)
	r.shareCluster(evs...)
	r.sendMu.Unlock()
	for _, p := range subscribers {
		p.autoSubscribe(&published{track: t, info: info, owner: owner})
	}
}

// putTrack records a track this node publishes for the other nodes, and
// claims its origin.
func (r *Room) putTrack(info TrackInfo) {
	r.observeTrack(TrackPublishedHere, info, false)
	if c := r.m.cluster; c != nil {
		c.TrackStarted(r.name, info.Record(r.m.opt.NodeID))
	}
}

// removeTrack forgets an ended track and unsubscribes everyone from it.
func (r *Room) removeTrack(owner *Participant, t *sfu.Track) {
	id := t.Info().ID
	r.sendMu.Lock()
	r.mu.Lock()
	if e, ok := r.tracks[id]; !ok || e.track != t {
		r.mu.Unlock()
		r.sendMu.Unlock()
		return // unknown, or already replaced by a republished track
	}
	if e := r.tracks[id]; e.orphan != nil {
		e.orphan.Stop()
	}
	delete(r.tracks, id)
	r.tracksChangedLocked()
	others := make([]*Participant, 0, len(r.everyone))
	for _, p := range r.everyone {
		if p != owner {
			others = append(others, p)
		}
	}
	r.mu.Unlock()
	ev := TrackUnpublished{TrackID: id, ParticipantID: owner.id}
	for _, p := range others {
		p.sink.Event(ev)
	}
	// The record goes before the event, as on publish.
	if c := r.m.cluster; c != nil {
		c.TrackEnded(r.name, id)
	}
	r.observeTrack(TrackUnpublishedHere, TrackInfo{ID: id, ParticipantID: owner.id, Kind: t.Info().Kind.String()}, false)
	if !r.m.isDraining() {
		// A draining node's tracks are not unpublished for the cluster:
		// they are lost to it (node_gone), kept for the broadcaster's
		// republish elsewhere (drain.go).
		r.shareCluster(ev)
	}
	r.sendMu.Unlock()
	for _, p := range others {
		p.unsubscribeTrack(id)
	}
	endEmptyWatchers(others)
}

func (r *Room) leave(p *Participant) {
	// A viewer leaves without a word; an announced participant's departure
	// is a broadcast, ordered with the others under sendMu.
	ordered := false
	for {
		if ordered {
			r.sendMu.Lock()
		}
		r.mu.Lock()
		if p.onStage && !ordered {
			r.mu.Unlock()
			ordered = true
			continue
		}
		break
	}
	unlock := func() {
		r.mu.Unlock()
		if ordered {
			r.sendMu.Unlock()
		}
	}
	if r.participants[p.id] != p {
		unlock()
		return
	}
	delete(r.participants, p.id)
	r.tracksChangedLocked() // its offered tracks will not start
	last := len(r.everyone) - 1
	moved := r.everyone[last]
	r.everyone[p.slot], moved.slot = moved, p.slot
	r.everyone[last] = nil
	r.everyone = r.everyone[:last]
	wasViewer := p.viewer
	r.setViewerLocked(p, false)
	var sinks []EventSink
	if p.onStage {
		delete(r.stage, p.id)
		sinks = r.sinksLocked(nil)
	}
	if len(r.participants) == 0 && r.emptyTimer == nil {
		r.emptyTimer = time.AfterFunc(r.m.opt.Room.EmptyTimeout, func() { r.m.removeIfEmpty(r) })
	}
	r.mu.Unlock()
	deliver(sinks, ParticipantLeft{ParticipantID: p.id})
	if c := r.m.cluster; c != nil && !p.spec.Relay {
		c.ParticipantLeft(r.name, p.id)
		c.CountsChanged(r) // the participant count other nodes read
	}
	if ordered {
		r.shareCluster(ParticipantLeft{ParticipantID: p.id})
		r.sendMu.Unlock()
	}
	r.observeParticipant(ParticipantLeftHere, p, "")
	p.logLeft()
	if wasViewer {
		r.viewersChanged()
	}
}

// viewersChanged schedules a viewer count for everyone: at once when none
// was sent in the last viewerCountInterval, else at its end. Changes in
// between are coalesced into that one event, which is sent only when the
// count differs from the last one sent.
func (r *Room) viewersChanged() {
	r.countsChanged()
	r.relayViewersChanged()
	r.mu.Lock()
	if r.vcTimer != nil {
		r.mu.Unlock()
		return // an update is already scheduled
	}
	// Off the caller's path (a join must not pay for telling 10,000 others),
	// and at once when the last count is older than the interval.
	wait := max(0, viewerCountInterval-time.Since(r.lastVC))
	r.vcTimer = time.AfterFunc(wait, r.sendViewerCount)
	r.mu.Unlock()
}

func (r *Room) sendViewerCount() {
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	r.mu.Lock()
	r.vcTimer = nil
	r.lastVC = time.Now()
	n := r.viewers + r.remoteViewers()
	if n == r.sentVC {
		r.mu.Unlock()
		return
	}
	r.sentVC = n
	sinks := r.sinksLocked(nil)
	r.mu.Unlock()
	deliver(sinks, ViewerCount{Count: n})
}

// message sends a chat message or a reaction to everyone in the room, within
// the room's rate.
func (r *Room) message(ev Event) error {
	if r.chatLimit != nil && !r.chatLimit.Allow() {
		return ErrRoomRateLimited
	}
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	r.mu.Lock()
	sinks := r.sinksLocked(nil)
	r.mu.Unlock()
	deliver(sinks, ev)
	r.shareCluster(ev)
	return nil
}

func (r *Room) stopTimers() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.emptyTimer != nil {
		r.emptyTimer.Stop()
	}
	if r.vcTimer != nil {
		r.vcTimer.Stop()
	}
}

// pickVideo chooses the track a single-video viewer (WHEP) gets: the one named
// want (by id or name), else the first camera, else any video.
func pickVideo(ts map[string]*published, want string) *published {
	var camera, any *published
	for _, t := range ts {
		if t.info.Kind != "video" {
			continue
		}
		if want != "" && (t.info.ID == want || strings.EqualFold(t.info.Name, want)) {
			return t
		}
		if t.info.Source == "camera" && (camera == nil || t.info.ID < camera.info.ID) {
			camera = t
		}
		if any == nil || t.info.ID < any.info.ID {
			any = t
		}
	}
	if camera != nil {
		return camera
	}
	return any
}

// hasSimulcast reports whether a track of the room is sent in simulcast
// layers (here or on another node): its viewers get bandwidth estimation.
func (r *Room) hasSimulcast() bool {
	r.mu.Lock()
	for _, t := range r.tracks {
		if len(t.info.Layers) > 1 {
			r.mu.Unlock()
			return true
		}
	}
	r.mu.Unlock()
	for _, t := range r.RemoteTracks() {
		if len(t.Info.Layers) > 1 {
			return true
		}
	}
	return false
}
