package room

import (
	"context"
	"errors"
	"time"
)

// Recorder is the port of recordings: a room's broadcast written to object
// storage (package record implements it; the node wires it). Signalling
// speaks this vocabulary only.
type Recorder interface {
	// StartRecording starts recording the room's broadcast on this node. It
	// returns ErrNoTracks when nothing is published, ErrRecordingCodec when
	// the broadcast cannot be recorded without transcoding (VP8),
	// ErrRecordingActive when the room is being recorded already.
	StartRecording(ctx context.Context, room string) (Recording, error)
	// StopRecording stops the room's recording and returns it once its
	// VOD playlist is written (or spooled); ErrNotRecording without one.
	StopRecording(ctx context.Context, room string) (Recording, error)
}

// Recording describes one recording of a room.
type Recording struct {
	// ID names the recording; its objects are under {prefix}{room}/{id}/.
	ID   string
	Room string
	// PlaylistURL is the store's URL of the recording's playlist
	// (index.m3u8): an EVENT playlist while it records, VOD once it ended.
	PlaylistURL string
	StartedAt   time.Time
	// EndedAt is zero while it records.
	EndedAt time.Time
	// Segments counts the media segments written so far, over all streams.
	Segments int
	// Dropped counts the segments the spool had to drop (the store was
	// unreachable for longer than recording.spool_max_bytes holds).
	Dropped int
}

// Errors of a Recorder.
var (
	ErrRecordingCodec    = errors.New("room: the broadcast's codec cannot be recorded without transcoding (VP8): publish H.264")
	ErrRecordingActive   = errors.New("room: the room is being recorded already")
	ErrNotRecording      = errors.New("room: the room is not being recorded on this node")
	ErrRecordingDisabled = errors.New("room: recordings are disabled on this node (recording.enabled)")
)
