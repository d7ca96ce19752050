package signaling

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/halobuzz/live/room"
)

// The server API's moderation (docs/api.md): remove a participant, end a
// room (each with an optional ban), send a system message, change a
// participant's grants. A call acts on every node serving the room and
// answers once each has applied it, or names the nodes that did not answer
// within moderationWait.

// moderationWait bounds how long a call waits for the other nodes.
const moderationWait = 3 * time.Second

// Bounds of moderation requests.
const (
	maxBanSeconds  = 366 * 24 * 3600
	maxReasonRunes = 256
	maxAPIBody     = 16 << 10
	maxIdentity    = 128
)

// apiModeration is the answer of a moderation call.
type apiModeration struct {
	Room   string `json:"room"`
	Action string `json:"action"`
	// Affected counts the participants it reached, over all nodes.
	Affected int             `json:"affected"`
	Nodes    []apiNodeResult `json:"nodes"`
	// Failed are the nodes serving the room that did not answer in time;
	// Complete is false when there are any (the call may be repeated).
	Failed   []string   `json:"failed"`
	Complete bool       `json:"complete"`
	BanUntil *time.Time `json:"ban_until,omitempty"`
}

type apiNodeResult struct {
	Node     string `json:"node"`
	Affected int    `json:"affected"`
}

// messageBody is the body of POST /api/v1/rooms/{room}/messages.
type messageBody struct {
	Text string `json:"text"`
	// Identity sends the message to that identity only.
	Identity string `json:"identity,omitempty"`
}

// grantsBody is the body of PATCH /api/v1/rooms/{room}/participants/{identity}.
type grantsBody struct {
	Publish   *bool `json:"publish"`
	Subscribe *bool `json:"subscribe"`
}

func (a *api) routeModeration(mux *http.ServeMux) {
	a.route(mux, "DELETE", "rooms/{room}/participants/{identity}", scopeRoom, a.removeParticipant)
	a.route(mux, "PATCH", "rooms/{room}/participants/{identity}", scopeRoom, a.patchParticipant)
	a.route(mux, "DELETE", "rooms/{room}", scopeRoom, a.endRoom)
	a.route(mux, "POST", "rooms/{room}/messages", scopeRoom, a.sendMessage)
	a.routeTrackModeration(mux) // api_tracks.go
}

// identityParam reads the identity of the path.
func identityParam(r *http.Request) (string, error) {
	id := r.PathValue("identity")
	if id == "" || !utf8.ValidString(id) || utf8.RuneCountInString(id) > maxIdentity {
		return "", newError(CodeBadRequest, fmt.Sprintf("identity must be 1..%d characters", maxIdentity))
	}
	return id, nil
}

// banQuery reads ?ban= (seconds) and ?reason= of a removal.
func banQuery(r *http.Request) (time.Time, string, error) {
	q := r.URL.Query()
	reason := q.Get("reason")
	if !utf8.ValidString(reason) || utf8.RuneCountInString(reason) > maxReasonRunes {
		return time.Time{}, "", newError(CodeUnprocessable, fmt.Sprintf("reason must be at most %d characters", maxReasonRunes))
	}
	v := q.Get("ban")
	if v == "" {
		return time.Time{}, reason, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return time.Time{}, "", newError(CodeBadRequest, "ban must be a whole number of seconds")
	}
	if n < 1 || n > maxBanSeconds {
		return time.Time{}, "", newError(CodeUnprocessable, fmt.Sprintf("ban must be 1..%d seconds", maxBanSeconds))
	}
	return time.Now().Add(time.Duration(n) * time.Second).Truncate(time.Millisecond), reason, nil
}

// removeParticipant is DELETE /api/v1/rooms/{room}/participants/{identity}:
// every session of the identity in the room ends (WebSocket clients get
// removed first), and with ?ban= the identity is refused for that long.
func (a *api) removeParticipant(w http.ResponseWriter, r *http.Request, c apiCall) error {
	identity, err := identityParam(r)
	if err != nil {
		return err
	}
	until, reason, err := banQuery(r)
	if err != nil {
		return err
	}
	return a.moderate(w, r, c, room.Action{Kind: room.ActRemove, Identity: identity, Reason: reason, BanUntil: until})
}

// endRoom is DELETE /api/v1/rooms/{room}: everyone is removed, and with
// ?ban= the room refuses broadcasts for that long.
func (a *api) endRoom(w http.ResponseWriter, r *http.Request, c apiCall) error {
	until, reason, err := banQuery(r)
	if err != nil {
		return err
	}
	return a.moderate(w, r, c, room.Action{Kind: room.ActEnd, Reason: reason, BanUntil: until})
}

// sendMessage is POST /api/v1/rooms/{room}/messages.
func (a *api) sendMessage(w http.ResponseWriter, r *http.Request, c apiCall) error {
	var body messageBody
	if err := decodeAPIBody(r, &body); err != nil {
		return err
	}
	if err := body.check(); err != nil {
		return err
	}
	return a.moderate(w, r, c, room.Action{Kind: room.ActMessage, Text: strings.TrimSpace(body.Text), Identity: body.Identity})
}

func (b messageBody) check() error {
	t := strings.TrimSpace(b.Text)
	if t == "" || utf8.RuneCountInString(t) > maxChatRunes {
		return newError(CodeUnprocessable, fmt.Sprintf("text must be 1..%d characters", maxChatRunes))
	}
	if utf8.RuneCountInString(b.Identity) > maxIdentity {
		return newError(CodeUnprocessable, fmt.Sprintf("identity must be at most %d characters", maxIdentity))
	}
	return nil
}

// patchParticipant is PATCH /api/v1/rooms/{room}/participants/{identity}:
// the identity's grants change live (promote a viewer to publisher, or
// demote one: its tracks are unpublished).
func (a *api) patchParticipant(w http.ResponseWriter, r *http.Request, c apiCall) error {
	identity, err := identityParam(r)
	if err != nil {
		return err
	}
	var body grantsBody
	if err := decodeAPIBody(r, &body); err != nil {
		return err
	}
	if body.Publish == nil {
		return newError(CodeUnprocessable, "publish (true or false) is required")
	}
	sub := body.Subscribe == nil || *body.Subscribe
	return a.moderate(w, r, c, room.Action{Kind: room.ActGrants, Identity: identity, Publish: *body.Publish, Subscribe: sub})
}

// moderate applies act over the cluster and answers.
func (a *api) moderate(w http.ResponseWriter, r *http.Request, c apiCall, act room.Action) error {
	ctx, cancel := context.WithTimeout(r.Context(), moderationWait)
	defer cancel()
	res, err := a.s.rooms.Moderate(ctx, c.room, act)
	if err != nil {
		return err
	}
	out := apiModeration{Room: c.room, Action: act.Kind, Affected: res.Affected, Nodes: make([]apiNodeResult, 0, len(res.Applied)),
		Failed: append([]string{}, res.Failed...), Complete: len(res.Failed) == 0}
	for _, n := range res.Applied {
		out.Nodes = append(out.Nodes, apiNodeResult{Node: n.Node, Affected: n.Affected})
	}
	if !act.BanUntil.IsZero() {
		t := act.BanUntil.UTC()
		out.BanUntil = &t
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// decodeAPIBody reads a JSON request body of at most maxAPIBody bytes
// into v: one object, no unknown member.
func decodeAPIBody(r *http.Request, v any) error {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return newError(CodeBadRequest, "Content-Type must be application/json")
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxAPIBody+1))
	if err != nil {
		return newError(CodeBadRequest, "the body could not be read")
	}
	if len(b) > maxAPIBody {
		return newError(CodeMessageTooLarge, fmt.Sprintf("body is over %d bytes", maxAPIBody))
	}
	return parseAPIBody(b, v)
}

// parseAPIBody decodes one JSON object into v, refusing unknown members
// and anything after the object.
func parseAPIBody(b []byte, v any) error {
	if !utf8.Valid(b) {
		return newError(CodeBadRequest, "the body is not UTF-8")
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return newError(CodeBadRequest, "the body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return newError(CodeBadRequest, fmt.Sprintf("field %q must be %s", te.Field, jsonKind(te.Type)))
		}
		if strings.HasPrefix(err.Error(), "json: unknown field ") {
			return newError(CodeBadRequest, "unknown field "+strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return newError(CodeBadRequest, "the body is not valid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return newError(CodeBadRequest, "data after the JSON object")
	}
	return nil
}
