package node

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halobuzz/live/signaling/apicheck"
	"github.com/halobuzz/live/signaling/auth"
)

var (
	apiCheckOnce sync.Once
	apiChecker   *apicheck.Checker
	apiCheckErr  error
)

// apiCall calls the server API of n and checks the request and the answer
// against docs/openapi.json; it returns the status and the body.
func apiCall(t *testing.T, n *testNode, method, path, token, body string) (int, []byte) {
	t.Helper()
	apiCheckOnce.Do(func() { apiChecker, apiCheckErr = apicheck.New() })
	if apiCheckErr != nil {
		t.Fatal(apiCheckErr)
	}
	req, err := http.NewRequest(method, n.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Close = true
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := apiChecker.Check(req, []byte(body), resp.StatusCode, resp.Header, b); err != nil {
		t.Errorf("%v\nbody: %s", err, b)
	}
	return resp.StatusCode, b
}

// apiGet decodes the JSON answer of a GET into v; it reports the status.
func apiGet(t *testing.T, n *testNode, path, token string, v any) int {
	t.Helper()
	status, b := apiCall(t, n, "GET", path, token, "")
	if status == http.StatusOK {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, b)
		}
	}
	return status
}

// apiAdmin mints a token with the admin grant for every room.
func (n *testNode) apiAdmin() string {
	n.t.Helper()
	tok, err := n.signer.Sign(auth.Claims{Identity: "ops", Grants: auth.Grants{Admin: true}, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		n.t.Fatal(err)
	}
	return tok
}

// Bodies of the server API, as a client reads them.
type (
	apiTrackBody struct {
		ID, Kind, Source, Name, Codec string
		Layers                        []string
	}
	apiRoomBody struct {
		Name       string     `json:"name"`
		StartedAt  *time.Time `json:"started_at"`
		Publishers []struct {
			ParticipantID string         `json:"participant_id"`
			Identity      string         `json:"identity"`
			Node          string         `json:"node"`
			Tracks        []apiTrackBody `json:"tracks"`
		} `json:"publishers"`
		Viewers         int            `json:"viewers"`
		ViewersByRegion map[string]int `json:"viewers_by_region"`
		Nodes           []string       `json:"nodes"`
	}
	apiRoomsBody struct {
		Rooms      []apiRoomBody `json:"rooms"`
		NextCursor string        `json:"next_cursor"`
	}
	apiParticipantBody struct {
		ID, Identity, Name, Role, Node, Region, Transport string
		JoinedAt                                          *time.Time `json:"joined_at"`
	}
	apiParticipantsBody struct {
		Publishers []apiParticipantBody `json:"publishers"`
		Audience   []apiParticipantBody `json:"audience"`
		NextCursor string               `json:"next_cursor"`
	}
)

// roomNames lists the names of rooms, in order.
func roomNames(rooms []apiRoomBody) string {
	names := make([]string, len(rooms))
	for i, r := range rooms {
		names[i] = r.Name
	}
	return strings.Join(names, ",")
}
