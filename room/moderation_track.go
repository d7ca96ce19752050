package room

// Moderating a track (the server API): mute, unmute, unpublish. The node
// the track is published on (its origin) applies them: its relayed copies
// elsewhere get nothing while it is muted, and end with it. Every node
// serving the room tells its own clients of a mute.

// onTrack reports whether an action kind acts on a track.
func onTrack(kind string) bool {
	return kind == ActMute || kind == ActUnmute || kind == ActUnpublish
}

// moderateTrack applies a track action here; it returns 1 when this node
// publishes the track (and so applied it), else 0.
func (r *Room) moderateTrack(a Action) int {
	r.mu.Lock()
	e := r.tracks[a.Track]
	if e == nil {
		r.mu.Unlock()
		return 0
	}
	t, owner, info, origin := e.track, e.owner, e.info, e.relay == nil
	sinks := r.sinksLocked(nil)
	r.mu.Unlock()
	switch a.Kind {
	case ActMute, ActUnmute:
		muted := a.Kind == ActMute
		if origin && !t.SetMuted(muted) {
			return 1 // already so: nobody is told again
		}
		deliver(sinks, TrackMuted{TrackID: a.Track, ParticipantID: info.ParticipantID, Muted: muted})
		if origin {
			r.observeTrack(TrackMutedHere, info, muted)
		}
	case ActUnpublish:
		if !origin {
			return 0 // it ends with its origin's record
		}
		t.SetMuted(true) // nothing more reaches anyone, whatever the publisher's connection does
		r.removeTrack(owner, t)
		owner.sink.Event(TrackUnpublished{TrackID: a.Track, ParticipantID: owner.id})
	}
	if !origin {
		return 0
	}
	return 1
}
