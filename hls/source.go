package hls

import (
	"time"

	"context"
	"errors"

	"github.com/halobuzz/live/room"
	"github.com/pion/rtp"
)

// ErrNoBroadcast is returned by a Source when the room has no track here.
var ErrNoBroadcast = errors.New("hls: nothing is published in the room on this node")

// TrackRef names one track of a room's broadcast.
type TrackRef struct {
	ID    string
	Kind  string // "audio" or "video"
	Codec string // MIME type: "video/H264", "audio/opus"
}

// RTPWriter takes a tap's packets, on the track's forwarder: it must not
// block nor keep payload.
type RTPWriter interface {
	WriteRTP(h *rtp.Header, payload []byte) (int, error)
}

// Tap is a running tap of one track.
type Tap interface {
	// Done is closed when the track ends.
	Done() <-chan struct{}
	// Close stops the tap.
	Close()
	// Follow moves the tap to the track that replaced its ended one (a
	// broadcaster's republish): moved, Done is the new track's; gone, the
	// track will not come back; neither, ask again later.
	Follow() (moved, gone bool)
	// KeyframeAge returns how long ago the track's last keyframe started;
	// RequestKeyframe asks the broadcaster for one.
	KeyframeAge() time.Duration
	RequestKeyframe()
}

// Source is where a session finds a room's broadcast and reads it.
type Source interface {
	// Tracks returns the tracks a player of the room gets (its main video
	// and that publisher's audio), or ErrNoBroadcast.
	Tracks(room string) ([]TrackRef, error)
	// Tap starts writing the packets of track id to w.
	Tap(room, id string, w RTPWriter) (Tap, error)
	// Hold brings here the broadcast of a room published on another node
	// (over the cluster's relays) and keeps it until release; it returns
	// ErrNoBroadcast when there is none anywhere.
	Hold(ctx context.Context, room string) (release func(), err error)
}

// RoomSource reads broadcasts from a node's rooms.
func RoomSource(m *room.Manager) Source { return roomSource{m} }

type roomSource struct{ m *room.Manager }

func (s roomSource) Tracks(name string) ([]TrackRef, error) {
	infos, err := s.m.BroadcastTracks(name)
	if errors.Is(err, room.ErrNoTracks) {
		return nil, ErrNoBroadcast
	}
	if err != nil {
		return nil, err
	}
	out := make([]TrackRef, 0, len(infos))
	for _, t := range infos {
		out = append(out, TrackRef{ID: t.ID, Kind: t.Kind, Codec: t.Codec})
	}
	return out, nil
}

func (s roomSource) Hold(ctx context.Context, name string) (func(), error) {
	release, err := s.m.HoldBroadcast(ctx, name)
	if errors.Is(err, room.ErrNoTracks) {
		return nil, ErrNoBroadcast
	}
	return release, err
}

func (s roomSource) Tap(name, id string, w RTPWriter) (Tap, error) {
	t, err := s.m.TapTrack(name, id, w)
	if err != nil {
		return nil, err
	}
	return t, nil
}
