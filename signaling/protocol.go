package signaling

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/halobuzz/live/room"
	"github.com/pion/webrtc/v4"
)

// ProtocolVersion is the version of docs/protocol.md this server speaks.
const ProtocolVersion = 1

// envelope is one WebSocket frame.
type envelope struct {
	V    int             `json:"v,omitempty"`
	Type string          `json:"type"`
	ID   int64           `json:"id,omitempty"`
	Data json.RawMessage `json:"data,omitempty"`
}

// decodeEnvelope parses a frame from a client. It never panics; errors are
// wire errors (bad_json, unsupported_version, bad_request).
func decodeEnvelope(frame []byte) (envelope, *Error) {
	var env envelope
	if !utf8.Valid(frame) {
		return env, newError(CodeBadJSON, "frame is not UTF-8")
	}
	trimmed := bytes.TrimSpace(frame)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return env, newError(CodeBadJSON, "frame is not a JSON object")
	}
	if err := json.Unmarshal(trimmed, &env); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return env, newError(CodeBadJSON, fmt.Sprintf("field %q must be %s", te.Field, jsonKind(te.Type)))
		}
		return env, newError(CodeBadJSON, "frame is not valid JSON")
	}
	if env.V != 0 && env.V != ProtocolVersion {
		return env, newError(CodeUnsupportedVersion, fmt.Sprintf("version %d is not supported; this server speaks %d", env.V, ProtocolVersion))
	}
	if env.Type == "" {
		return env, newError(CodeBadRequest, "type is missing")
	}
	if env.ID < 0 {
		return env, newError(CodeBadRequest, "id must not be negative")
	}
	return env, nil
}

// decodeData parses env.Data into v; a missing data object decodes as {}.
func decodeData(env envelope, v any) *Error {
	raw := bytes.TrimSpace(env.Data)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		raw = []byte("{}")
	}
	if raw[0] != '{' {
		return newError(CodeBadRequest, "data must be an object")
	}
	if err := json.Unmarshal(raw, v); err != nil {
		// The decoder's own text names Go types and struct fields: say
		// which field is wrong in the protocol's terms instead.
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return newError(CodeBadRequest, fmt.Sprintf("data: field %q must be %s", te.Field, jsonKind(te.Type)))
		}
		return newError(CodeBadRequest, "data is not valid JSON of this message type")
	}
	return nil
}

// jsonKind names the JSON type a Go type is decoded from.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "of another type"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "of another type"
}

// Client message bodies.
type (
	joinData struct {
		Token         string `json:"token"`
		Room          string `json:"room"`
		Name          string `json:"name"`
		AutoSubscribe *bool  `json:"auto_subscribe"`
		Hidden        bool   `json:"hidden"`
	}
	trackMeta struct {
		TrackID string `json:"track_id"`
		Source  string `json:"source"`
		Name    string `json:"name"`
	}
	publishData struct {
		SDP    string      `json:"sdp"`
		Tracks []trackMeta `json:"tracks"`
	}
	sdpData struct {
		SDP string `json:"sdp"`
	}
	trackIDsData struct {
		TrackIDs []string `json:"track_ids"`
	}
	trickleData struct {
		Target    string                   `json:"target"`
		Candidate *webrtc.ICECandidateInit `json:"candidate"`
	}
	chatData struct {
		Text string `json:"text"`
	}
	refreshData struct {
		Token string `json:"token"`
	}
	reactionData struct {
		Emoji string `json:"emoji"`
	}
	// setLayerData caps the simulcast layer of one track.
	setLayerData struct {
		TrackID string `json:"track_id"`
		Max     string `json:"max"`
	}
	layerSetData struct {
		TrackID   string `json:"track_id"`
		Max       string `json:"max"`
		Simulcast bool   `json:"simulcast"`
	}
	// statsData answers stats: the viewer's link and layers.
	statsData struct {
		BandwidthEstimate int               `json:"bandwidth_estimate_bps"`
		Layers            map[string]string `json:"layers"`
	}
	// redirectData sends a client to a node of its region.
	redirectData struct {
		URL    string `json:"url"`
		Reason string `json:"reason"` // "region", "draining" or "full"
	}
)

// Server message bodies.
type (
	participantJSON struct {
		ID        string `json:"id"`
		Identity  string `json:"identity"`
		Name      string `json:"name"`
		Publisher bool   `json:"publisher"`
	}
	trackJSON struct {
		ID            string `json:"id"`
		ParticipantID string `json:"participant_id"`
		Kind          string `json:"kind"`
		Source        string `json:"source"`
		Name          string `json:"name"`
		MID           string `json:"mid"`
		Codec         string `json:"codec"`
		// Layers names the caps set_layer takes for a simulcast track.
		Layers []string `json:"layers,omitempty"`
	}
	grantsJSON struct {
		Publish   bool `json:"publish"`
		Subscribe bool `json:"subscribe"`
	}
	joinedData struct {
		ParticipantID string            `json:"participant_id"`
		Room          string            `json:"room"`
		Identity      string            `json:"identity"`
		Name          string            `json:"name"`
		Grants        grantsJSON        `json:"grants"`
		Participants  []participantJSON `json:"participants"`
		Tracks        []trackJSON       `json:"tracks"`
		ViewerCount   int               `json:"viewer_count"`
		ICEServers    []string          `json:"ice_servers"`
		// TURNServers are the node's TURN servers (turn.enabled,
		// turn.external_urls) with credentials for this participant.
		TURNServers []ICEServer `json:"turn_servers,omitempty"`
	}
	tokenExpiringData struct {
		Exp         int64 `json:"exp"`          // the token's expiry, Unix seconds
		SecondsLeft int64 `json:"seconds_left"` // until the session ends without a refresh
	}
	refreshedData struct {
		Exp    int64      `json:"exp"`
		Grants grantsJSON `json:"grants"`
	}
	errorData struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Target  string `json:"target,omitempty"` // media_failed: publisher or subscriber
	}
)

func toParticipantJSON(p room.ParticipantInfo) participantJSON {
	return participantJSON{ID: p.ID, Identity: p.Identity, Name: p.Name, Publisher: p.Publisher}
}

func toTrackJSON(t room.TrackInfo) trackJSON {
	return trackJSON{ID: t.ID, ParticipantID: t.ParticipantID, Kind: t.Kind, Source: t.Source, Name: t.Name, MID: t.MID, Codec: t.Codec,
		Layers: layerNames(len(t.Layers))}
}

// layerNames are the caps of a track sent in n simulcast layers.
func layerNames(n int) []string {
	switch {
	case n >= 3:
		return []string{"low", "medium", "high"}
	case n == 2:
		return []string{"low", "high"}
	}
	return nil
}

// eventMessage turns a room event into its wire type and body ("" for
// events that are not messages, such as room.Closed).
func eventMessage(ev room.Event) (string, any) {
	switch ev := ev.(type) {
	case room.ParticipantJoined:
		return "participant_joined", map[string]any{"participant": toParticipantJSON(ev.Participant)}
	case room.ParticipantLeft:
		return "participant_left", map[string]any{"participant_id": ev.ParticipantID}
	case room.TrackPublished:
		return "track_published", map[string]any{"track": toTrackJSON(ev.Track)}
	case room.TrackUnpublished:
		return "track_unpublished", map[string]any{"track_id": ev.TrackID, "participant_id": ev.ParticipantID}
	case room.ViewerCount:
		return "viewer_count", map[string]any{"count": ev.Count}
	case room.Offer:
		return "offer", sdpData{SDP: ev.SDP}
	case room.Candidate:
		return "trickle", trickleData{Target: ev.Target, Candidate: &ev.Candidate}
	case room.Chat:
		return "chat", map[string]any{"participant_id": ev.ParticipantID, "identity": ev.Identity, "name": ev.Name, "text": ev.Text}
	case room.Reaction:
		return "reaction", map[string]any{"participant_id": ev.ParticipantID, "identity": ev.Identity, "name": ev.Name, "emoji": ev.Emoji}
	case room.OriginLost:
		return "origin_lost", map[string]any{"node": ev.Node, "participant_ids": nonNil(ev.ParticipantIDs), "track_ids": nonNil(ev.TrackIDs)}
	case room.LayersWanted:
		return "layers", map[string]any{"track_id": ev.TrackID, "client_track_id": ev.ClientTrackID, "active": nonNil(ev.Active)}
	case room.Redirect:
		return "redirect", redirectData{URL: wsURL(strings.TrimRight(ev.URL, "/") + "/ws"), Reason: "draining"}
	case room.MediaFailed:
		next := "subscribe"
		if ev.Target == "publisher" {
			next = "publish"
		}
		return "error", errorData{Code: CodeMediaFailed, Message: fmt.Sprintf("%s connection failed and was released; %s again on a new connection", ev.Target, next), Target: ev.Target}
	}
	return moderationMessage(ev) // moderation_wire.go
}

// nonNil makes an empty list encode as [] rather than null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func encode(typ string, id int64, data any) []byte {
	raw, err := json.Marshal(data)
	if err != nil {
		raw = []byte("{}")
	}
	b, _ := json.Marshal(envelope{V: ProtocolVersion, Type: typ, ID: id, Data: raw})
	return b
}
