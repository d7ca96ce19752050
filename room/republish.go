package room

import (
	"errors"
	"strings"
	"time"

	"github.com/halobuzz/live/sfu"
)

// A broadcaster's connection drops (a network change, an OBS reconnect, a
// crashed app) far more often than a broadcast really ends. When a track
// ends because its publisher's connection was lost (not because they left,
// unpublished or the node drains), the room keeps it for Options.RepublishGrace:
// its viewers keep their down-tracks, waiting. When the same identity
// publishes a track of the same kind, source and name again within that
// time, the new track takes the old one's id and every viewer's down-track
// is re-anchored to it (sfu.DownTrack.Switch): WebSocket and WHEP viewers
// keep playing without renegotiating, with continuous sequence numbers.
// The same happens when such a track arrives while the old one is still
// live on another connection (the old connection has not timed out yet).
// When the grace period passes, the track is removed for good, and WHEP
// viewers left with nothing to watch are ended by the server.

// ErrBroadcastEnded is the reason a WHEP viewer's session is ended: what it
// watched was unpublished for good.
var ErrBroadcastEnded = errors.New("room: the broadcast ended")

// republishKey names a track across its publisher's reconnects.
func republishKey(identity string, info sfu.TrackInfo) string {
	return trackKey(identity, info.Kind.String(), info.Source, info.Name)
}

// trackKey is republishKey from a track's description: the key of a
// relayed copy, whose publisher is on another node.
func trackKey(identity, kind, source, name string) string {
	return identity + "\x00" + kind + "\x00" + source + "\x00" + strings.ToLower(name)
}

// claimRepublish returns the id of the track a new track of p replaces, or
// "" for a new track.
func (r *Room) claimRepublish(p *Participant, info sfu.TrackInfo) string {
	if r.m.opt.Room.RepublishGrace <= 0 {
		return ""
	}
	key := republishKey(p.spec.Identity, info)
	r.mu.Lock()
	for id, e := range r.tracks {
		if e.key == key && e.owner != p && !e.claimed {
			e.claimed = true
			r.mu.Unlock()
			return id
		}
	}
	r.mu.Unlock()
	return r.claimRemote(key)
}

// trackEnded handles the end of one of p's tracks.
func (r *Room) trackEnded(p *Participant, t *sfu.Track) {
	if grace := r.m.opt.Room.RepublishGrace; grace > 0 && p.lostTrack(t) && !r.m.isDraining() {
		r.mu.Lock()
		e := r.tracks[t.Info().ID]
		if e != nil && e.track == t && !e.claimed {
			id := t.Info().ID
			e.orphan = time.AfterFunc(grace, func() { r.expire(id, t) })
			r.mu.Unlock()
			r.m.log.Info("track kept for republish", "room", r.name, "track", id, "grace", grace)
			return
		}
		r.mu.Unlock()
	}
	r.removeTrack(p, t)
}

// endOrphansOf removes the tracks of p kept for its republish: p left on
// purpose, so it will not come back for them.
func (r *Room) endOrphansOf(p *Participant) {
	r.mu.Lock()
	var ended []*sfu.Track
	for _, e := range r.tracks {
		if e.owner == p && e.orphan != nil && !e.claimed {
			ended = append(ended, e.track)
		}
	}
	r.mu.Unlock()
	for _, t := range ended {
		r.removeTrack(p, t)
	}
}

// expire removes a track kept for republish that nobody republished.
func (r *Room) expire(id string, t *sfu.Track) {
	r.mu.Lock()
	e := r.tracks[id]
	if e == nil || e.track != t || e.claimed {
		r.mu.Unlock()
		return
	}
	owner := e.owner
	r.mu.Unlock()
	r.removeTrack(owner, t)
}

// republished moves a track's viewers to its replacement t (which has the
// replaced track's id) and reports whether t replaced a track.
func (r *Room) republished(owner *Participant, t *sfu.Track) bool {
	id := t.Info().ID
	r.sendMu.Lock()
	r.mu.Lock()
	e := r.tracks[id]
	if e == nil || !e.claimed {
		r.mu.Unlock()
		r.sendMu.Unlock()
		return false
	}
	if e.orphan != nil {
		e.orphan.Stop()
		e.orphan = nil
	}
	ownerChanged := e.owner != owner
	// A relayed copy taken over: the broadcaster moved to this node (its
	// origin died or drained). The track is this node's now.
	prev := e.relay
	wasRelayed := prev != nil
	if wasRelayed {
		e.relay = nil
		r.forgetRemoteLocked(id)
	}
	e.track, e.owner, e.claimed = t, owner, false
	e.info.ParticipantID = owner.id
	e.info.MID = t.Info().MID
	info := e.info
	var evs []Event
	if ownerChanged {
		// The broadcaster came back as a new participant: it is announced
		// like any publisher, and the track's new owner is told.
		if !owner.onStage && !owner.spec.Hidden && r.participants[owner.id] == owner {
			owner.onStage = true
			r.stage[owner.id] = owner
			evs = append(evs, ParticipantJoined{Participant: owner.Info()})
		}
		evs = append(evs, TrackPublished{Track: info})
	}
	sinks := r.sinksLocked(owner)
	others := make([]*Participant, 0, len(r.everyone))
	for _, p := range r.everyone {
		if p != owner {
			others = append(others, p)
		}
	}
	r.mu.Unlock()
	deliver(sinks, evs...)
	r.putTrack(info) // the record and the origin claim before the event (see addTrack)
	r.shareCluster(evs...)
	r.sendMu.Unlock()
	moved := 0
	for _, p := range others {
		p.mu.Lock()
		sub := p.subscriber
		p.mu.Unlock()
		if sub == nil {
			continue
		}
		had, err := sub.Reanchor(id, t)
		if had && err == nil {
			moved++
			continue
		}
		if had { // another codec: the viewer must renegotiate for it
			p.unsubscribeTrack(id)
		}
		if p.wantsAll() {
			p.autoSubscribe(&published{track: t, info: info, owner: owner})
		}
	}
	if wasRelayed {
		r.closeIfUnused(prev)
	}
	r.m.log.Info("track republished", "room", r.name, "track", id, "participant", owner.id, "viewers", moved, "moved_from_node", wasRelayed)
	return true
}

// endEmptyWatchers ends the WHEP sessions among ps that have nothing left
// to watch: a WHEP player cannot be offered another track, and ending its
// session is how it learns that the broadcast is over.
func endEmptyWatchers(ps []*Participant) {
	for _, p := range ps {
		if !p.spec.LeaveOnFailure || p.left.Load() {
			continue
		}
		p.mu.Lock()
		sub := p.subscriber
		p.mu.Unlock()
		if sub != nil && len(sub.TrackIDs()) == 0 {
			p.sink.Event(Closed{Reason: ErrBroadcastEnded})
			p.End()
		}
	}
}
