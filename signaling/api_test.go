package signaling

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/room"
	"github.com/halobuzz/live/signaling/apicheck"
	"github.com/halobuzz/live/signaling/auth"
)

// apiClient calls the server API of a testServer and checks every answer
// against docs/openapi.json.
type apiClient struct {
	t   *testing.T
	ts  *testServer
	chk *apicheck.Checker
}

func newAPIClient(t *testing.T, ts *testServer) *apiClient {
	t.Helper()
	chk, err := apicheck.New()
	if err != nil {
		t.Fatal(err)
	}
	return &apiClient{t: t, ts: ts, chk: chk}
}

// call sends a request and returns the status and body, after checking
// both against the document.
func (c *apiClient) call(method, path, token, body string) (int, http.Header, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.ts.url+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
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
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.chk.Check(req, []byte(body), resp.StatusCode, resp.Header, b); err != nil {
		c.t.Errorf("%s %s: %v\nbody: %s", method, path, err, b)
	}
	return resp.StatusCode, resp.Header, b
}

// wantError checks an error answer's status and code.
func (c *apiClient) wantError(method, path, token, body string, status int, code string) {
	c.t.Helper()
	got, _, b := c.call(method, path, token, body)
	var e apiError
	if err := json.Unmarshal(b, &e); err != nil || got != status || e.Error.Code != code {
		c.t.Errorf("%s %s: got %d %s, want %d %s", method, path, got, b, status, code)
	}
}

// grantToken mints a token with grants for room ("" any room).
func grantToken(t *testing.T, ts *testServer, identity, roomName string, g auth.Grants) string {
	t.Helper()
	tok, err := ts.s.Signer().Sign(auth.Claims{Identity: identity, Room: roomName, Grants: g, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// quietSink is a participant without a client: the API's reads need only
// its presence.
type quietSink struct{}

func (quietSink) Event(room.Event) {}

func joinQuiet(t *testing.T, ts *testServer, roomName, identity string, publish bool) *room.Participant {
	t.Helper()
	p, err := ts.rooms.Join(roomName, room.ParticipantSpec{Identity: identity, Name: identity, Publish: publish, Subscribe: true}, quietSink{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Leave)
	return p
}

func TestAPI_ServesItsOpenAPIDocument(t *testing.T) {
	ts := startServer(t, nil)
	c := newAPIClient(t, ts)
	status, h, body := c.call("GET", "/api/v1/openapi.json", "", "")
	want, err := os.ReadFile("../docs/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if status != 200 || string(body) != string(want) || h.Get("Content-Type") != "application/json" {
		t.Fatalf("got %d %q, want docs/openapi.json as application/json", status, h.Get("Content-Type"))
	}
}

func TestAPI_RefusesCallsWithoutTheRightToken(t *testing.T) {
	ts := startServer(t, nil)
	c := newAPIClient(t, ts)
	joinQuiet(t, ts, "alpha", "alice", true)
	viewer := ts.token(t, "bob", "alpha", false)
	modAlpha := grantToken(t, ts, "mod", "alpha", auth.Grants{Moderate: true})
	adminBeta := grantToken(t, ts, "ops", "beta", auth.Grants{Admin: true})
	expired, _ := ts.s.Signer().Sign(auth.Claims{Identity: "old", Grants: auth.Grants{Admin: true}, ExpiresAt: time.Now().Add(-time.Hour)})

	status, h, _ := c.call("GET", "/api/v1/rooms", "", "")
	if status != 401 || !strings.Contains(h.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("no token: %d %q, want 401 with WWW-Authenticate", status, h.Get("WWW-Authenticate"))
	}
	c.wantError("GET", "/api/v1/rooms", "not-a-token", "", 401, CodeUnauthorized)
	c.wantError("GET", "/api/v1/rooms", expired, "", 401, CodeUnauthorized)
	c.wantError("GET", "/api/v1/rooms", viewer, "", 403, CodeForbidden)
	c.wantError("GET", "/api/v1/rooms/alpha", viewer, "", 403, CodeForbidden)
	// A moderator acts on its own room only, and does not list the others.
	c.wantError("GET", "/api/v1/rooms", modAlpha, "", 403, CodeForbidden)
	c.wantError("GET", "/api/v1/rooms/beta", modAlpha, "", 403, CodeForbidden)
	if status, _, b := c.call("GET", "/api/v1/rooms/alpha", modAlpha, ""); status != 200 {
		t.Errorf("moderator of alpha reading alpha: %d %s", status, b)
	}
	// An admin token bound to a room is an admin of that room only.
	c.wantError("GET", "/api/v1/rooms/alpha", adminBeta, "", 403, CodeForbidden)
	c.wantError("GET", "/api/v1/rooms/bad%20name", modAlpha, "", 400, CodeBadRequest)
	// A path outside the document: not found, in the API's error form.
	if status, _, body := do(t, "GET", ts.url+"/api/v1/nothing", modAlpha, "", ""); status != 404 || !strings.Contains(body, `"code":"not_found"`) {
		t.Errorf("unknown call: %d %s, want 404 not_found", status, body)
	}
}

// A call's path with another method (POST where DELETE removes) is
// answered 405 method_not_allowed with the methods the path takes, not
// "no such call": the developer learns the method was wrong.
func TestAPI_WrongMethodIsAnswered405WithAllow(t *testing.T) {
	ts := startServer(t, nil)
	admin := grantToken(t, ts, "ops", "", auth.Grants{Admin: true})
	for _, tt := range []struct{ method, path, allow string }{
		{"POST", "/api/v1/rooms/demo/participants/troll", "DELETE, PATCH"},
		{"PUT", "/api/v1/rooms/demo", "GET, DELETE"},
		{"GET", "/api/v1/rooms/demo/tracks/t_1/mute", "POST"},
		{"POST", "/api/v1/rooms", "GET"},
		{"POST", "/api/v1/rooms/demo/participants", "GET"},
		{"DELETE", "/api/v1/openapi.json", "GET"},
	} {
		req, _ := http.NewRequest(tt.method, ts.url+tt.path, nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != tt.allow ||
			!strings.Contains(string(body), `"code":"method_not_allowed"`) || !strings.Contains(string(body), tt.allow) {
			t.Errorf("%s %s: %d Allow %q %s; want 405 method_not_allowed, Allow %q", tt.method, tt.path,
				resp.StatusCode, resp.Header.Get("Allow"), body, tt.allow)
		}
	}
	// Not a call with any method: still 404.
	for _, p := range []string{"/api/v1/rooms/demo/people", "/api/v1/rooms/demo/tracks/t_1/skip", "/api/v1/rooms//participants/x"} {
		if status, _, body := do(t, "POST", ts.url+p, admin, "", ""); status != 404 || !strings.Contains(body, `"code":"not_found"`) {
			t.Errorf("POST %s: %d %s, want 404 not_found", p, status, body)
		}
	}
}

func TestAPI_ListsRoomsByPagesAndDescribesThem(t *testing.T) {
	ts := startServer(t, nil)
	c := newAPIClient(t, ts)
	admin := grantToken(t, ts, "ops", "", auth.Grants{Admin: true})
	joinQuiet(t, ts, "alpha", "alice", true)
	joinQuiet(t, ts, "alpha", "v1", false)
	joinQuiet(t, ts, "alpha", "v2", false)
	joinQuiet(t, ts, "beta", "bea", true)
	joinQuiet(t, ts, "gamma", "gus", false)

	var names []string
	cursor := ""
	for page := 0; ; page++ {
		if page > 5 {
			t.Fatal("the cursor never ends")
		}
		status, _, b := c.call("GET", "/api/v1/rooms?limit=2&cursor="+cursor, admin, "")
		if status != 200 {
			t.Fatalf("page %d: %d %s", page, status, b)
		}
		var l apiRoomList
		if err := json.Unmarshal(b, &l); err != nil {
			t.Fatal(err)
		}
		if len(l.Rooms) > 2 {
			t.Fatalf("page of %d rooms, limit 2", len(l.Rooms))
		}
		for _, r := range l.Rooms {
			names = append(names, r.Name)
			if r.StartedAt == nil || len(r.Nodes) != 1 || r.Nodes[0] != "origin" {
				t.Errorf("room %s: started %v nodes %v, want a start and [origin]", r.Name, r.StartedAt, r.Nodes)
			}
		}
		if cursor = l.NextCursor; cursor == "" {
			break
		}
	}
	// No viewer has media up: every count is 0, so the order is by name.
	if strings.Join(names, ",") != "alpha,beta,gamma" {
		t.Errorf("rooms %v, want alpha,beta,gamma once each", names)
	}
	// Nothing is published: the live filter keeps none.
	if status, _, b := c.call("GET", "/api/v1/rooms?live=true", admin, ""); status != 200 || !strings.Contains(string(b), `"rooms":[]`) {
		t.Errorf("live rooms: %d %s, want none", status, b)
	}

	status, _, b := c.call("GET", "/api/v1/rooms/alpha", admin, "")
	var r apiRoom
	if status != 200 || json.Unmarshal(b, &r) != nil || r.Name != "alpha" || r.Viewers != 0 {
		t.Errorf("room alpha: %d %s", status, b)
	}

	status, _, b = c.call("GET", "/api/v1/rooms/alpha/participants?limit=1", admin, "")
	var pl apiParticipantList
	if status != 200 || json.Unmarshal(b, &pl) != nil {
		t.Fatalf("participants: %d %s", status, b)
	}
	if len(pl.Publishers) != 1 || pl.Publishers[0].Identity != "alice" || pl.Publishers[0].Role != "publisher" ||
		pl.Publishers[0].Node != "origin" || pl.Publishers[0].Transport != "websocket" || pl.Publishers[0].JoinedAt == nil {
		t.Errorf("publishers %+v, want alice, publisher, on origin, websocket, with joined_at", pl.Publishers)
	}
	if len(pl.Audience) != 1 || pl.NextCursor == "" {
		t.Fatalf("audience page %+v next %q, want one viewer and a cursor", pl.Audience, pl.NextCursor)
	}
	first := pl.Audience[0].Identity
	status, _, b = c.call("GET", "/api/v1/rooms/alpha/participants?limit=1&cursor="+pl.NextCursor, admin, "")
	pl = apiParticipantList{}
	if status != 200 || json.Unmarshal(b, &pl) != nil || len(pl.Audience) != 1 || pl.Audience[0].Identity == first || pl.NextCursor != "" {
		t.Errorf("second audience page: %d %s, want the other viewer and no cursor", status, b)
	}

	c.wantError("GET", "/api/v1/rooms/nowhere", admin, "", 404, CodeNotFound)
	c.wantError("GET", "/api/v1/rooms/nowhere/participants", admin, "", 404, CodeNotFound)
	c.wantError("GET", "/api/v1/rooms?cursor=%21%21", admin, "", 400, CodeBadRequest)
	c.wantError("GET", "/api/v1/rooms?limit=0", admin, "", 400, CodeBadRequest)
	c.wantError("GET", "/api/v1/rooms?live=maybe", admin, "", 400, CodeBadRequest)
}

func TestAPI_RateLimitsEachTokenAndLogsEveryCall(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Limits.APIRequestsPerSecond = 1 })
	c := newAPIClient(t, ts)
	admin := grantToken(t, ts, "ops", "", auth.Grants{Admin: true})
	other := grantToken(t, ts, "ops2", "", auth.Grants{Admin: true})
	limited := false
	for i := 0; i < 10 && !limited; i++ {
		status, h, _ := c.call("GET", "/api/v1/rooms", admin, "")
		switch {
		case status == 429:
			limited = true
			if i < 2 || h.Get("Retry-After") == "" {
				t.Errorf("429 after %d calls (burst 2) with Retry-After %q", i, h.Get("Retry-After"))
			}
		case status != 200:
			t.Fatalf("call %d: %d", i, status)
		}
	}
	if !limited {
		t.Fatal("10 calls at once with a limit of 1 a second (burst 2) were never refused")
	}
	c.wantError("GET", "/api/v1/rooms", admin, "", 429, CodeRateLimited)
	// Another token has its own budget.
	if status, _, _ := c.call("GET", "/api/v1/rooms", other, ""); status != 200 {
		t.Errorf("another token: %d, want 200", status)
	}
	// Refused tokens are limited per address.
	refused := false
	for i := 0; i < 10 && !refused; i++ {
		status, _, _ := c.call("GET", "/api/v1/rooms", "forged-"+strings.Repeat("x", i), "")
		refused = status == 429
	}
	if !refused {
		t.Error("10 calls at once with forged tokens from one address were never limited")
	}
	logs := ts.logs.String()
	for _, want := range []string{`"msg":"api call"`, `"identity":"ops"`, `"path":"/api/v1/rooms"`, `"status":429`, `"code":"rate_limited"`, `"remote":"127.0.0.1"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the audit log lacks %s", want)
		}
	}
	if strings.Contains(logs, admin) {
		t.Error("the audit log holds a token")
	}
}

// FuzzAPIAllowed: any request path that reaches the API's catch-all is
// answered without a panic, and a path said to take a method matches a
// call of that method (405's Allow never names a method the path lacks).
func FuzzAPIAllowed(f *testing.F) {
	for _, p := range []string{"/api/v1/rooms/demo/participants/x", "/api/v1/rooms//", "/api/v1/", "/api/v1/rooms/a/tracks/%2F/mute", "/api/v1/openapi.json"} {
		f.Add(p)
	}
	a := &api{}
	mux := http.NewServeMux()
	a.route(mux, "GET", "rooms", scopeList, nil)
	a.route(mux, "GET", "rooms/{room}", scopeRoom, nil)
	a.route(mux, "DELETE", "rooms/{room}/participants/{identity}", scopeRoom, nil)
	a.route(mux, "POST", "rooms/{room}/tracks/{track}/mute", scopeRoom, nil)
	f.Fuzz(func(t *testing.T, path string) {
		r := &http.Request{Method: "PUT", URL: &url.URL{Path: path}}
		for _, m := range strings.Split(a.allowed(r), ", ") {
			if m == "" {
				continue
			}
			segs := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), apiPrefix), "/")
			if !slices.ContainsFunc(a.routes, func(rt apiRoute) bool { return rt.method == m && pathMatches(strings.Split(rt.path, "/"), segs) }) {
				t.Fatalf("%q: Allow names %s, which no call of the path takes", path, m)
			}
		}
	})
}
