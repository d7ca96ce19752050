package sfu

// A moderator's mute (the server API): the track is still read and
// followed, so that its pictures stay known, but nothing of it is written
// to anyone, viewers, relays to other nodes and joiners' replays alike.
// When it is unmuted every viewer starts again on a keyframe, asked of the
// publisher at once; sequence numbers continue (nothing to report as loss).

// SetMuted stops (true) or resumes (false) forwarding the track. It
// reports whether that changed anything.
func (t *Track) SetMuted(muted bool) bool {
	if t.muted.Swap(muted) == muted {
		return false
	}
	if !muted {
		for _, d := range *t.downs.Load() {
			d.skip(t)
		}
		t.RequestKeyframe()
	}
	return true
}

// Muted reports whether a moderator muted the track.
func (t *Track) Muted() bool { return t.muted.Load() }
