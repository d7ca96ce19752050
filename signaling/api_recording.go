package signaling

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/halobuzz/live/room"
)

// The server API's recordings (docs/api.md): POST starts recording a
// room's broadcast into the S3-compatible store (recording.*), DELETE
// stops it. A recording runs on the node that started it: DELETE goes to
// that node (the answer's node field names it).

// CodeRecordingDisabled: the node does not record (recording.enabled is
// false); HTTP 501.
const CodeRecordingDisabled = "recording_disabled"

// recordingWait bounds a start (the room's LL-HLS muxer waits for a
// keyframe) and a stop.
const recordingWait = 15 * time.Second

// SetRecorder gives the node's recorder (package record). Without one the
// recording calls answer 501 recording_disabled.
func (s *Server) SetRecorder(r room.Recorder) { s.recorder = r }

// HLSHandler is the node's LL-HLS server given by SetHLS (nil without).
func (s *Server) HLSHandler() http.Handler { return s.hls }

// apiRecording is a recording in the server API.
type apiRecording struct {
	ID          string     `json:"id"`
	Room        string     `json:"room"`
	Node        string     `json:"node"`
	PlaylistURL string     `json:"playlist_url"`
	StartedAt   time.Time  `json:"started_at"`
	EndedAt     *time.Time `json:"ended_at,omitempty"`
	Segments    int        `json:"segments"`
	Dropped     int        `json:"dropped"`
}

// apiRecordingBody is the answer of the recording calls.
type apiRecordingBody struct {
	Recording apiRecording `json:"recording"`
}

func (a *api) routeRecording(mux *http.ServeMux) {
	a.route(mux, "POST", "rooms/{room}/recording", scopeRoom, a.startRecording)
	a.route(mux, "DELETE", "rooms/{room}/recording", scopeRoom, a.stopRecording)
}

// startRecording is POST /api/v1/rooms/{room}/recording: 201 and the
// recording, once its first segment is on its way to the store.
func (a *api) startRecording(w http.ResponseWriter, r *http.Request, c apiCall) error {
	if a.s.recorder == nil {
		a.recordingDisabled(w)
		return nil
	}
	if strings.Trim(c.room, ".") == "" {
		return newError(CodeBadRequest, "a room named only with dots cannot be recorded: its objects' keys would hold . or .. as a path segment")
	}
	ctx, cancel := context.WithTimeout(r.Context(), recordingWait)
	defer cancel()
	rec, err := a.s.recorder.StartRecording(ctx, c.room)
	if err != nil {
		return a.recordingError(w, err)
	}
	writeJSON(w, http.StatusCreated, apiRecordingBody{Recording: a.toAPIRecording(rec)})
	return nil
}

// stopRecording is DELETE /api/v1/rooms/{room}/recording: 200 and the
// finished recording, whose VOD playlist is spooled for upload.
func (a *api) stopRecording(w http.ResponseWriter, r *http.Request, c apiCall) error {
	if a.s.recorder == nil {
		a.recordingDisabled(w)
		return nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), recordingWait)
	defer cancel()
	rec, err := a.s.recorder.StopRecording(ctx, c.room)
	if err != nil {
		return a.recordingError(w, err)
	}
	writeJSON(w, http.StatusOK, apiRecordingBody{Recording: a.toAPIRecording(rec)})
	return nil
}

func (a *api) toAPIRecording(r room.Recording) apiRecording {
	out := apiRecording{ID: r.ID, Room: r.Room, Node: a.s.cfg.Node.ID, PlaylistURL: r.PlaylistURL,
		StartedAt: r.StartedAt.UTC().Truncate(time.Millisecond), Segments: r.Segments, Dropped: r.Dropped}
	if !r.EndedAt.IsZero() {
		t := r.EndedAt.UTC().Truncate(time.Millisecond)
		out.EndedAt = &t
	}
	return out
}

// recordingError maps a Recorder's error to its wire error.
func (a *api) recordingError(w http.ResponseWriter, err error) error {
	switch {
	case errors.Is(err, room.ErrRecordingDisabled):
		a.recordingDisabled(w)
		return nil
	case errors.Is(err, room.ErrRecordingCodec):
		return newError(CodeUnsupportedCodec, "the broadcast is VP8, which a recording (fMP4 HLS) cannot carry without transcoding, "+
			"and the node does not transcode: publish H.264")
	case errors.Is(err, room.ErrRecordingActive):
		return newError(CodeConflict, "the room is being recorded already")
	case errors.Is(err, room.ErrNotRecording):
		return newError(CodeNotFound, "the room is not being recorded on this node (stop it on the node that started it)")
	case errors.Is(err, room.ErrNoTracks):
		return newError(CodeNotFound, "nothing is published in the room")
	case errors.Is(err, context.DeadlineExceeded):
		return newError(CodeClusterUnavailable, fmt.Sprintf("the room's broadcast did not start its recording within %s; retry", recordingWait))
	}
	return err
}

// recordingDisabled answers 501 recording_disabled.
func (a *api) recordingDisabled(w http.ResponseWriter) {
	e := newError(CodeRecordingDisabled, "this node does not record: recording.enabled is false (docs/operations.md, Recordings)")
	a.s.metrics.errors.WithLabelValues(e.Code).Inc()
	if sw, ok := w.(*statusWriter); ok {
		sw.code = e.Code
	}
	writeJSON(w, http.StatusNotImplemented, apiError{Error: apiErrorBody{Code: e.Code, Message: e.Message}})
}
