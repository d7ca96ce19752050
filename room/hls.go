package room

import (
	"context"
	"fmt"
	"time"

	"github.com/halobuzz/live/sfu"
	"github.com/pion/rtp"
)

// RTPWriter takes the packets of a Tap. WriteRTP runs on the track's
// forwarder: it must not block nor keep payload after it returns.
type RTPWriter interface {
	WriteRTP(h *rtp.Header, payload []byte) (int, error)
}

// Tap is an in-process viewer of one of a room's tracks (an LL-HLS muxer):
// it gets what a WebRTC viewer of the track gets, starting on a keyframe.
type Tap struct {
	r    *Room
	id   string
	tap  *sfu.Tap
	done <-chan struct{}
}

// Done is closed when the tapped track ends (its broadcaster left, or lost
// the connection: see Follow).
func (t *Tap) Done() <-chan struct{} { return t.done }

// Follow moves the tap to the track that took its ended track's place
// (the broadcaster republished within room.republish_grace; the track
// keeps its id), as viewers' down-tracks are moved. It reports whether it
// moved (Done is then the new track's), and whether the track is gone for
// good (no longer in the room). Neither: the room still waits for the
// broadcaster; ask again later.
func (t *Tap) Follow() (moved, gone bool) {
	p := t.r.track(t.id)
	if p == nil {
		return false, true
	}
	cur := t.tap.Track()
	if p.track == cur || p.track.Info().Kind != cur.Info().Kind {
		return false, false
	}
	select {
	case <-p.track.Done():
		return false, false
	default:
	}
	if err := t.tap.Switch(p.track); err != nil {
		return false, true // another codec: the muxer must start again
	}
	t.done = p.track.Done()
	return true, false
}

// Close stops the tap.
func (t *Tap) Close() { t.tap.Close() }

// RequestKeyframe asks the tapped track's broadcaster for a keyframe
// (merged and rate-limited per track as viewers' requests are).
func (t *Tap) RequestKeyframe() { t.tap.Track().RequestKeyframe() }

// KeyframeAge returns how long ago the tapped track's last keyframe
// started.
func (t *Tap) KeyframeAge() time.Duration { return t.tap.Track().KeyframeAge() }

// BroadcastTracks returns the tracks a WHEP player of the room named would
// get now on this node: its main video and that publisher's audio. It
// returns ErrNoTracks when the room has none here.
func (m *Manager) BroadcastTracks(name string) ([]TrackInfo, error) {
	r := m.Room(name)
	if r == nil {
		return nil, ErrNoTracks
	}
	tracks, err := r.watchTracks("")
	if err != nil {
		return nil, err
	}
	out := make([]TrackInfo, 0, len(tracks))
	r.mu.Lock()
	for _, t := range tracks {
		if p := r.tracks[t.Info().ID]; p != nil {
			out = append(out, p.info)
		}
	}
	r.mu.Unlock()
	if len(out) == 0 {
		return nil, ErrNoTracks
	}
	return out, nil
}

// TapTrack starts a tap of the room's track id that writes its packets to
// w. The caller closes it.
func (m *Manager) TapTrack(name, id string, w RTPWriter) (*Tap, error) {
	r := m.Room(name)
	if r == nil {
		return nil, ErrNoTracks
	}
	p := r.track(id)
	if p == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTrack, id)
	}
	t, err := p.track.Tap(w)
	if err != nil {
		return nil, err
	}
	return &Tap{r: r, id: id, tap: t, done: p.track.Done()}, nil
}

// HoldBroadcast makes the room's broadcast, published on another node of
// the cluster, available here for an LL-HLS muxer: a hidden participant
// watches it as a WHEP player does, so the room pulls its tracks over the
// cluster's relays and keeps them while it stays (it counts as one viewer
// of the room on this node). It returns once the relayed tracks are here,
// or ErrNoTracks when nothing is published anywhere (or the node is not in
// a cluster). The caller calls release when the muxer stops.
func (m *Manager) HoldBroadcast(ctx context.Context, name string) (release func(), err error) {
	if m.cluster == nil || m.opt.RelayDial == nil {
		return nil, ErrNoTracks
	}
	p, err := m.Join(name, ParticipantSpec{Identity: "hls", Name: "LL-HLS", Subscribe: true, Hidden: true}, nopSink{})
	if err != nil {
		return nil, err
	}
	r := p.room
	r.waitLinked(ctx, watchWait)
	if len(r.RemoteTracks()) == 0 {
		p.Leave()
		return nil, ErrNoTracks
	}
	p.watching.Store(true)
	r.mu.Lock()
	r.setViewerLocked(p, true)
	r.mu.Unlock()
	r.viewersChanged()
	r.demandRelays(false)
	deadline := time.NewTimer(watchWait)
	defer deadline.Stop()
	for {
		changed := r.tracksChange()
		if _, err := r.watchTracks(""); err == nil && !r.relaysPending() {
			return p.Leave, nil
		}
		select {
		case <-ctx.Done():
			p.Leave()
			return nil, ctx.Err()
		case <-deadline.C:
			if _, err := r.watchTracks(""); err == nil {
				return p.Leave, nil // part of the broadcast: what arrived
			}
			p.Leave()
			return nil, ErrNoTracks
		case <-changed:
		}
	}
}
