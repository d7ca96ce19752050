package room

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/halobuzz/live/sfu"
)

// viewerCountInterval is the shortest gap between two viewer count events.
const viewerCountInterval = 500 * time.Millisecond

// Room is one live room: its participants and the tracks they publish.
type Room struct {
	m    *Manager
	name string

	mu           sync.Mutex
	participants map[string]*Participant
	tracks       map[string]*published
	emptyTimer   *time.Timer
	vcTimer      *time.Timer
	lastVC       time.Time
	sentVC       int
}

type published struct {
	track *sfu.Track
	info  TrackInfo
	owner *Participant
}

func newRoom(m *Manager, name string) *Room {
	return &Room{m: m, name: name, participants: map[string]*Participant{}, tracks: map[string]*published{}, sentVC: -1}
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
	out := make([]*Participant, 0, len(r.participants))
	for _, p := range r.participants {
		out = append(out, p)
	}
	return out
}

func (r *Room) join(spec ParticipantSpec, sink EventSink) (*Participant, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if max := r.m.opt.ParticipantsPerRoom; max > 0 && len(r.participants) >= max {
		return nil, ErrRoomFull
	}
	p := newParticipant(r, spec, sink)
	if r.emptyTimer != nil {
		r.emptyTimer.Stop()
		r.emptyTimer = nil
	}
	if !spec.Hidden {
		for _, o := range r.participants {
			o.sink.Event(ParticipantJoined{Participant: p.Info()})
		}
	}
	r.participants[p.id] = p
	rec := ParticipantRecord{ID: p.id, Identity: p.spec.Identity, Name: p.spec.Name, Publisher: spec.Publish, Node: r.m.opt.NodeID}
	r.m.storeWrite(func(ctx context.Context) error { return r.m.store.PutParticipant(ctx, r.name, rec) })
	r.m.log.Info("participant joined", "room", r.name, "participant", p.id, "role", p.role(), "identity", spec.Identity)
	return p, nil
}

// Snapshot returns the other participants and the published tracks, for a
// joining client.
func (r *Room) Snapshot() ([]ParticipantInfo, []TrackInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ps := make([]ParticipantInfo, 0, len(r.participants))
	for _, p := range r.participants {
		if !p.spec.Hidden {
			ps = append(ps, p.Info())
		}
	}
	ts := make([]TrackInfo, 0, len(r.tracks))
	for _, t := range r.tracks {
		ts = append(ts, t.info)
	}
	return ps, ts
}

// ViewerCount returns the number of viewers now.
func (r *Room) ViewerCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.viewersLocked()
}

func (r *Room) viewersLocked() int {
	n := 0
	for _, p := range r.participants {
		if p.subscriber != nil {
			n++
		}
	}
	return n
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

// addTrack records a started track and subscribes every auto-subscribing
// participant to it.
func (r *Room) addTrack(owner *Participant, t *sfu.Track) {
	si := t.Info()
	info := TrackInfo{
		ID: si.ID, ParticipantID: owner.id, Kind: si.Kind.String(), Source: si.Source,
		Name: si.Name, MID: si.MID, Codec: si.MimeType,
	}
	r.mu.Lock()
	r.tracks[info.ID] = &published{track: t, info: info, owner: owner}
	var subscribers []*Participant
	for _, p := range r.participants {
		if p != owner {
			p.sink.Event(TrackPublished{Track: info})
		}
		if p != owner && p.wantsAll() {
			subscribers = append(subscribers, p)
		}
	}
	r.mu.Unlock()
	rec := TrackRecord{ID: info.ID, ParticipantID: owner.id, Kind: info.Kind, Source: info.Source, Name: info.Name, MID: info.MID, Codec: info.Codec, Node: r.m.opt.NodeID}
	r.m.storeWrite(func(ctx context.Context) error { return r.m.store.PutTrack(ctx, r.name, rec) })
	for _, p := range subscribers {
		p.subscribeTracks([]*published{{track: t, info: info, owner: owner}})
	}
}

// removeTrack forgets an ended track and unsubscribes everyone from it.
func (r *Room) removeTrack(owner *Participant, t *sfu.Track) {
	id := t.Info().ID
	r.mu.Lock()
	if _, ok := r.tracks[id]; !ok {
		r.mu.Unlock()
		return
	}
	delete(r.tracks, id)
	others := make([]*Participant, 0, len(r.participants))
	for _, p := range r.participants {
		if p != owner {
			others = append(others, p)
		}
	}
	r.mu.Unlock()
	r.m.storeWrite(func(ctx context.Context) error { return r.m.store.DeleteTrack(ctx, r.name, id) })
	for _, p := range others {
		p.sink.Event(TrackUnpublished{TrackID: id, ParticipantID: owner.id})
		p.unsubscribeTrack(id)
	}
}

func (r *Room) leave(p *Participant) {
	r.mu.Lock()
	if _, ok := r.participants[p.id]; !ok {
		r.mu.Unlock()
		return
	}
	delete(r.participants, p.id)
	if !p.spec.Hidden {
		for _, o := range r.participants {
			o.sink.Event(ParticipantLeft{ParticipantID: p.id})
		}
	}
	if len(r.participants) == 0 && r.emptyTimer == nil {
		r.emptyTimer = time.AfterFunc(r.m.opt.EmptyTimeout, func() { r.m.removeIfEmpty(r) })
	}
	r.mu.Unlock()
	r.m.storeWrite(func(ctx context.Context) error { return r.m.store.DeleteParticipant(ctx, r.name, p.id) })
	r.m.log.Info("participant left", "room", r.name, "participant", p.id, "role", p.role(), "identity", p.spec.Identity)
	r.viewersChanged()
}

// viewersChanged sends the viewer count to everyone, at most twice a second.
func (r *Room) viewersChanged() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.vcTimer != nil {
		return // an update is already scheduled
	}
	wait := viewerCountInterval - time.Since(r.lastVC)
	if wait <= 0 {
		r.sendViewerCountLocked()
		return
	}
	r.vcTimer = time.AfterFunc(wait, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.vcTimer = nil
		r.sendViewerCountLocked()
	})
}

func (r *Room) sendViewerCountLocked() {
	n := r.viewersLocked()
	r.lastVC = time.Now()
	if n == r.sentVC {
		return
	}
	r.sentVC = n
	for _, p := range r.participants {
		p.sink.Event(ViewerCount{Count: n})
	}
}

func (r *Room) chat(from *Participant, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.participants {
		p.sink.Event(Chat{ParticipantID: from.id, Name: from.spec.Name, Text: text})
	}
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
