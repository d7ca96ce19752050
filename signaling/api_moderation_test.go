package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/loadtest"
	"github.com/halobuzz/live/signaling/auth"
)

// wsJoin joins roomName over a real WebSocket with a token for identity.
func wsJoin(t *testing.T, ts *testServer, identity, roomName string, g auth.Grants) (*loadtest.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := loadtest.Dial(ctx, "ws"+strings.TrimPrefix(ts.url, "http")+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	no := false
	_, err = c.Request(ctx, "join", loadtest.JoinRequest{Token: grantToken(t, ts, identity, roomName, g), AutoSubscribe: &no})
	return c, err
}

// nextOf returns the data of the next message of type typ, skipping others.
func nextOf(t *testing.T, c *loadtest.Conn, typ string) json.RawMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		env, err := c.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for %s: %v", typ, err)
		}
		if env.Type == typ {
			return env.Data
		}
	}
}

// closed waits for the server to close c.
func closed(t *testing.T, c *loadtest.Conn) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the socket stayed open")
	}
}

// protoCode is the wire code of a refused request.
func protoCode(err error) string {
	var pe *loadtest.ProtocolError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

var viewerGrants = auth.Grants{Subscribe: true}

// A removed WebSocket client is told why (removed, with the ban's end)
// and its socket closes; the banned identity is refused with banned
// whatever token it presents, others are not.
func TestAPI_RemoveWithBan(t *testing.T) {
	ts := startServer(t, nil)
	c := newAPIClient(t, ts)
	mod := grantToken(t, ts, "mod", "show", auth.Grants{Moderate: true})
	troll, err := wsJoin(t, ts, "troll", "show", viewerGrants)
	if err != nil {
		t.Fatal(err)
	}
	fan, err := wsJoin(t, ts, "fan", "show", viewerGrants)
	if err != nil {
		t.Fatal(err)
	}
	status, _, b := c.call("DELETE", "/api/v1/rooms/show/participants/troll?ban=600&reason=spam", mod, "")
	var res apiModeration
	if status != 200 || json.Unmarshal(b, &res) != nil || res.Affected != 1 || !res.Complete || res.BanUntil == nil {
		t.Fatalf("remove: %d %s", status, b)
	}
	var rm removedData
	if err := json.Unmarshal(nextOf(t, troll, "removed"), &rm); err != nil || rm.Reason != "spam" || rm.RoomEnded || rm.BanUntil == nil ||
		rm.BanUntil.Before(time.Now().Add(590*time.Second)) {
		t.Errorf("removed %+v (%v), want reason spam and a ban of 10 minutes", rm, err)
	}
	closed(t, troll)
	// Whatever token: a fresh one with more grants is refused too.
	if _, err := wsJoin(t, ts, "troll", "show", auth.Grants{Publish: true, Subscribe: true}); protoCode(err) != CodeBanned {
		t.Errorf("banned identity's join: %v, want %s", err, CodeBanned)
	}
	// Over WHEP too: 403 banned, not a server error.
	req, _ := http.NewRequest("POST", ts.url+"/whep/show", strings.NewReader(edgeOffer(t)))
	req.Header.Set("Authorization", "Bearer "+grantToken(t, ts, "troll", "show", viewerGrants))
	req.Header.Set("Content-Type", mimeSDP)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.HasPrefix(string(body), CodeBanned) {
		t.Errorf("banned identity's WHEP POST: %d %q, want 403 banned", resp.StatusCode, body)
	}
	if _, err := wsJoin(t, ts, "troll", "other", viewerGrants); err != nil {
		t.Errorf("a ban is for its room only: %v", err)
	}
	if _, err := wsJoin(t, ts, "newcomer", "show", viewerGrants); err != nil {
		t.Errorf("another identity: %v", err)
	}
	// fan is still there, and removable without a ban: it may come back.
	if status, _, b := c.call("DELETE", "/api/v1/rooms/show/participants/fan", mod, ""); status != 200 {
		t.Fatalf("remove fan: %d %s", status, b)
	}
	closed(t, fan)
	if _, err := wsJoin(t, ts, "fan", "show", viewerGrants); err != nil {
		t.Errorf("removed without a ban, fan rejoins: %v", err)
	}
	c.wantError("DELETE", "/api/v1/rooms/show/participants/nobody", mod, "", 404, CodeNotFound)
	c.wantError("DELETE", "/api/v1/rooms/show/participants/fan?ban=0", mod, "", 422, CodeUnprocessable)
	c.wantError("DELETE", "/api/v1/rooms/show/participants/fan?ban=soon", mod, "", 400, CodeBadRequest)
	c.wantError("DELETE", "/api/v1/rooms/show/participants/fan?reason="+strings.Repeat("x", 300), mod, "", 422, CodeUnprocessable)
	c.wantError("DELETE", "/api/v1/rooms/other/participants/troll", mod, "", 403, CodeForbidden)
	if !strings.Contains(ts.logs.String(), `"msg":"moderation"`) {
		t.Error("no moderation log line")
	}
}

// Ending a room removes everyone (removed with room_ended); with a ban the
// room refuses broadcasts, and viewers may still come.
func TestAPI_EndRoomWithBan(t *testing.T) {
	ts := startServer(t, nil)
	c := newAPIClient(t, ts)
	admin := grantToken(t, ts, "ops", "", auth.Grants{Admin: true})
	host, err := wsJoin(t, ts, "host", "show", auth.Grants{Publish: true, Subscribe: true})
	if err != nil {
		t.Fatal(err)
	}
	fan, err := wsJoin(t, ts, "fan", "show", viewerGrants)
	if err != nil {
		t.Fatal(err)
	}
	status, _, b := c.call("DELETE", "/api/v1/rooms/show?ban=60&reason=illegal", admin, "")
	var res apiModeration
	if status != 200 || json.Unmarshal(b, &res) != nil || res.Affected != 2 {
		t.Fatalf("end: %d %s", status, b)
	}
	for _, conn := range []*loadtest.Conn{host, fan} {
		var rm removedData
		if err := json.Unmarshal(nextOf(t, conn, "removed"), &rm); err != nil || !rm.RoomEnded || rm.Reason != "illegal" {
			t.Errorf("removed %+v, want room_ended and the reason", rm)
		}
		closed(t, conn)
	}
	again, err := wsJoin(t, ts, "host", "show", auth.Grants{Publish: true, Subscribe: true})
	if err != nil {
		t.Fatalf("a viewer or host may join an ended room: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := again.Request(ctx, "publish", map[string]any{"sdp": "v=0"}); protoCode(err) != CodeBanned {
		t.Errorf("a broadcast in the banned room: %v, want %s", err, CodeBanned)
	}
	c.wantError("DELETE", "/api/v1/rooms/nowhere", admin, "", 404, CodeNotFound)
}

// A system message reaches everyone, or the one identity named.
func TestAPI_SystemMessage(t *testing.T) {
	ts := startServer(t, nil)
	c := newAPIClient(t, ts)
	mod := grantToken(t, ts, "mod", "show", auth.Grants{Moderate: true})
	a, _ := wsJoin(t, ts, "a", "show", viewerGrants)
	b, _ := wsJoin(t, ts, "b", "show", viewerGrants)
	if status, _, body := c.call("POST", "/api/v1/rooms/show/messages", mod, `{"text":"welcome"}`); status != 200 {
		t.Fatalf("message: %d %s", status, body)
	}
	if status, _, body := c.call("POST", "/api/v1/rooms/show/messages", mod, `{"text":"only you","identity":"b"}`); status != 200 {
		t.Fatalf("message to b: %d %s", status, body)
	}
	for name, conn := range map[string]*loadtest.Conn{"a": a, "b": b} {
		var m systemMessageData
		if json.Unmarshal(nextOf(t, conn, "system_message"), &m) != nil || m.Text != "welcome" {
			t.Errorf("%s: %+v, want welcome", name, m)
		}
	}
	var m systemMessageData
	if json.Unmarshal(nextOf(t, b, "system_message"), &m) != nil || m.Text != "only you" {
		t.Errorf("b: %+v, want only you", m)
	}
	if _, err := a.Request(context.Background(), "stats", nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	for {
		env, err := a.Next(ctx)
		if err != nil {
			break
		}
		if env.Type == "system_message" {
			t.Errorf("a got b's message: %s", env.Data)
		}
	}
	c.wantError("POST", "/api/v1/rooms/show/messages", mod, `{"text":"hi","identity":"nobody"}`, 404, CodeNotFound)
	c.wantError("POST", "/api/v1/rooms/show/messages", mod, `{"text":"  "}`, 422, CodeUnprocessable)
	c.wantError("POST", "/api/v1/rooms/show/messages", mod, `{"text":"hi","extra":1}`, 400, CodeBadRequest)
	c.wantError("POST", "/api/v1/rooms/show/messages", mod, `{"text":7}`, 400, CodeBadRequest)
	c.wantError("POST", "/api/v1/rooms/show/messages", mod, `{"text":"hi"} {}`, 400, CodeBadRequest)
	c.wantError("POST", "/api/v1/rooms/empty/messages", mod, `{"text":"hi"}`, 403, CodeForbidden)
}

// Every request body of the API is outside input.
func FuzzAPIBody(f *testing.F) {
	for _, s := range []string{`{"text":"hi"}`, `{"text":"hi","identity":"b"}`, `{"publish":true}`, `{"publish":false,"subscribe":false}`,
		`{"text":7}`, `{}`, `[]`, `{"publish":true}x`, `{"a":1}`, "\xff", ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m messageBody
		if err := parseAPIBody(b, &m); err == nil {
			_ = m.check()
		} else if toWire(err).Code != CodeBadRequest {
			t.Fatalf("%q: %v", b, err)
		}
		var g grantsBody
		if err := parseAPIBody(b, &g); err != nil && toWire(err).Code != CodeBadRequest {
			t.Fatalf("%q: %v", b, err)
		}
	})
}
