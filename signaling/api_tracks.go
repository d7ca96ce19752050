package signaling

import (
	"fmt"
	"net/http"
	"unicode/utf8"

	"github.com/halobuzz/live/room"
)

// Moderating a track (docs/api.md): mute and unmute stop and resume its
// forwarding to everyone (its publisher is told with track_muted, as is
// everyone else in the room); DELETE unpublishes it. The node it is
// published on applies them; a call on any node reaches it.

// maxTrackID bounds the track id of a path.
const maxTrackID = 128

func (a *api) routeTrackModeration(mux *http.ServeMux) {
	a.route(mux, "POST", "rooms/{room}/tracks/{track}/mute", scopeRoom, a.trackAction(room.ActMute))
	a.route(mux, "POST", "rooms/{room}/tracks/{track}/unmute", scopeRoom, a.trackAction(room.ActUnmute))
	a.route(mux, "DELETE", "rooms/{room}/tracks/{track}", scopeRoom, a.trackAction(room.ActUnpublish))
}

func (a *api) trackAction(kind string) func(w http.ResponseWriter, r *http.Request, c apiCall) error {
	return func(w http.ResponseWriter, r *http.Request, c apiCall) error {
		id := r.PathValue("track")
		if id == "" || !utf8.ValidString(id) || len(id) > maxTrackID {
			return newError(CodeBadRequest, fmt.Sprintf("track must be a track id of at most %d bytes", maxTrackID))
		}
		return a.moderate(w, r, c, room.Action{Kind: kind, Track: id})
	}
}

// trackMutedData is the body of a track_muted event.
type trackMutedData struct {
	TrackID       string `json:"track_id"`
	ParticipantID string `json:"participant_id"`
	Muted         bool   `json:"muted"`
}
