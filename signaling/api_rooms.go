package signaling

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/halobuzz/live/room"
)

// The server API's reads: the live rooms of the cluster, one room, its
// participants (docs/api.md).

// defaultPage is the page size when a call names none.
const defaultPage = 50

// apiRoom is a room in the server API.
type apiRoom struct {
	Name            string         `json:"name"`
	StartedAt       *time.Time     `json:"started_at,omitempty"`
	Publishers      []apiPublisher `json:"publishers"`
	Viewers         int            `json:"viewers"`
	ViewersByRegion map[string]int `json:"viewers_by_region"`
	Nodes           []string       `json:"nodes"`
}

// apiPublisher is a publisher of a room and its tracks.
type apiPublisher struct {
	ParticipantID string     `json:"participant_id"`
	Identity      string     `json:"identity"`
	Name          string     `json:"name"`
	Node          string     `json:"node"`
	Tracks        []apiTrack `json:"tracks"`
}

// apiTrack is a live track.
type apiTrack struct {
	ID     string   `json:"id"`
	Kind   string   `json:"kind"`
	Source string   `json:"source"`
	Name   string   `json:"name"`
	Codec  string   `json:"codec"`
	Layers []string `json:"layers"`
}

// apiParticipant is a participant in the server API.
type apiParticipant struct {
	ID        string     `json:"id"`
	Identity  string     `json:"identity"`
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	Node      string     `json:"node"`
	Region    string     `json:"region"`
	JoinedAt  *time.Time `json:"joined_at,omitempty"`
	Transport string     `json:"transport,omitempty"`
}

// apiRoomList is the body of GET /api/v1/rooms.
type apiRoomList struct {
	Rooms []apiRoom `json:"rooms"`
	// NextCursor continues the list; "" after its last page.
	NextCursor string `json:"next_cursor"`
}

// apiParticipantList is the body of GET /api/v1/rooms/{room}/participants.
type apiParticipantList struct {
	Room       string           `json:"room"`
	Publishers []apiParticipant `json:"publishers"`
	Audience   []apiParticipant `json:"audience"`
	NextCursor string           `json:"next_cursor"`
}

func toAPIRoom(s room.RoomSummary) apiRoom {
	out := apiRoom{Name: s.Name, Publishers: make([]apiPublisher, 0, len(s.Publishers)), Viewers: s.Viewers,
		ViewersByRegion: s.ViewersByRegion, Nodes: s.Nodes}
	if !s.StartedAt.IsZero() {
		t := s.StartedAt.UTC().Truncate(time.Millisecond)
		out.StartedAt = &t
	}
	for _, p := range s.Publishers {
		ap := apiPublisher{ParticipantID: p.ParticipantID, Identity: p.Identity, Name: p.Name, Node: p.Node, Tracks: make([]apiTrack, 0, len(p.Tracks))}
		for _, t := range p.Tracks {
			layers := layerNames(len(t.Layers))
			if layers == nil {
				layers = []string{}
			}
			ap.Tracks = append(ap.Tracks, apiTrack{ID: t.ID, Kind: t.Kind, Source: t.Source, Name: t.Name, Codec: t.Codec, Layers: layers})
		}
		out.Publishers = append(out.Publishers, ap)
	}
	return out
}

func toAPIParticipants(list []room.ParticipantDetail) []apiParticipant {
	out := make([]apiParticipant, 0, len(list))
	for _, p := range list {
		ap := apiParticipant{ID: p.ID, Identity: p.Identity, Name: p.Name, Role: p.Role, Node: p.Node, Region: p.Region, Transport: p.Transport}
		if p.JoinedAt > 0 {
			t := time.UnixMilli(p.JoinedAt).UTC()
			ap.JoinedAt = &t
		}
		out = append(out, ap)
	}
	return out
}

// pageQuery reads limit and cursor from the query.
func pageQuery(r *http.Request) (int, string, error) {
	q := r.URL.Query()
	limit := defaultPage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > room.MaxPage {
			return 0, "", newError(CodeBadRequest, fmt.Sprintf("limit must be a number 1..%d", room.MaxPage))
		}
		limit = n
	}
	return limit, q.Get("cursor"), nil
}

// listRooms is GET /api/v1/rooms: the rooms of the cluster, the most
// watched first; ?live=true keeps those with a live track.
func (a *api) listRooms(w http.ResponseWriter, r *http.Request, _ apiCall) error {
	limit, cursor, err := pageQuery(r)
	if err != nil {
		return err
	}
	live := false
	switch v := r.URL.Query().Get("live"); v {
	case "", "false":
	case "true":
		live = true
	default:
		return newError(CodeBadRequest, "live must be true or false")
	}
	rooms, next, err := a.s.rooms.ListRooms(r.Context(), room.ListOptions{Live: live, Limit: limit, Cursor: cursor})
	if err != nil {
		return err
	}
	out := apiRoomList{Rooms: make([]apiRoom, 0, len(rooms)), NextCursor: next}
	for _, s := range rooms {
		out.Rooms = append(out.Rooms, toAPIRoom(s))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// getRoom is GET /api/v1/rooms/{room}.
func (a *api) getRoom(w http.ResponseWriter, r *http.Request, c apiCall) error {
	s, err := a.s.rooms.RoomInfo(r.Context(), c.room)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toAPIRoom(s))
	return nil
}

// listParticipants is GET /api/v1/rooms/{room}/participants: the
// publishers whole, the audience by pages.
func (a *api) listParticipants(w http.ResponseWriter, r *http.Request, c apiCall) error {
	limit, cursor, err := pageQuery(r)
	if err != nil {
		return err
	}
	pubs, audience, next, err := a.s.rooms.RoomParticipants(r.Context(), c.room, limit, cursor)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, apiParticipantList{Room: c.room, Publishers: toAPIParticipants(pubs), Audience: toAPIParticipants(audience), NextCursor: next})
	return nil
}
