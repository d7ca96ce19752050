package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/halobuzz/live/internal/testutil"
)

// mint runs `halo-sfu token args...` with environ and returns the token,
// failing the test unless it exits 0 with one line.
func mint(t *testing.T, environ []string, args ...string) string {
	t.Helper()
	var out, errOut testutil.SyncBuffer
	if code := run(context.Background(), append([]string{"token"}, args...), environ, &out, &errOut); code != 0 {
		t.Fatalf("halo-sfu token %q: exit %d, stderr %q", args, code, errOut.String())
	}
	tok := strings.TrimSuffix(out.String(), "\n")
	if tok == "" || strings.ContainsAny(tok, "\n ") {
		t.Fatalf("halo-sfu token %q printed %q, want one token", args, out.String())
	}
	return tok
}

// join opens /ws on addr, joins with tok, and returns the reply's type and
// error code, if any.
func join(t *testing.T, addr, tok string) (typ, code string) {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WriteJSON(map[string]any{"v": 1, "type": "join", "id": 1, "data": map[string]any{"token": tok, "room": "demo"}}); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var reply struct {
		Type string
		Data struct{ Code string }
	}
	if err := c.ReadJSON(&reply); err != nil {
		t.Fatal(err)
	}
	_ = c.WriteJSON(map[string]any{"v": 1, "type": "leave", "id": 2})
	return reply.Type, reply.Data.Code
}

// startProductionNode runs a node (run, as the binary does) configured by
// environ on a free loopback port, until the test ends; it returns the
// HTTP address.
func startProductionNode(t *testing.T, environ []string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut testutil.SyncBuffer
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, []string{"--http.listen", addr, "--metrics.listen", "", "--sfu.udp_port", "0"}, environ, &out, &errOut)
	}()
	t.Cleanup(func() {
		cancel()
		if c := <-exited; c != 0 {
			t.Errorf("node exit %d; stderr:\n%s", c, errOut.String())
		}
	})
	testutil.Eventually(t, "the node answers /healthz", func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})
	return addr
}

// halo-sfu token signs with the configured secret, so a node with that
// secret accepts the token (a WebSocket join; the admin API for --admin),
// and refuses it once expired or when signed with another secret.
func TestToken_MintedTokensAreAcceptedByANode(t *testing.T) {
	environ := []string{"HALO_AUTH_SECRET=" + strings.Repeat("5ec7e7", 8)}
	addr := startProductionNode(t, environ)

	viewer := mint(t, environ, "--room", "demo", "--identity", "alice")
	if typ, code := join(t, addr, viewer); typ != "joined" {
		t.Errorf("a minted token's join: %s %s, want joined", typ, code)
	}
	short := mint(t, environ, "--room", "demo", "--identity", "bob", "--publish", "--ttl", "1s")
	forged := mint(t, []string{"HALO_AUTH_SECRET=" + strings.Repeat("0ther5", 8)}, "--room", "demo", "--identity", "mallory", "--publish")
	if typ, code := join(t, addr, forged); typ != "error" || code != "unauthorized" {
		t.Errorf("a token signed with another secret: %s %s, want error unauthorized", typ, code)
	}
	other := mint(t, environ, "--room", "elsewhere", "--identity", "carol")
	if typ, code := join(t, addr, other); typ != "error" {
		t.Errorf("a token for another room joined demo: %s %s", typ, code)
	}

	admin := mint(t, environ, "--identity", "ops", "--admin")
	for _, tt := range []struct {
		tok  string
		want int
	}{{admin, http.StatusOK}, {viewer, http.StatusForbidden}} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/admin/nodes", nil)
		req.Header.Set("Authorization", "Bearer "+tt.tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("/admin/nodes: %s, want %d", resp.Status, tt.want)
		}
	}

	// The verifier allows 5 s of clock skew past exp.
	time.Sleep(7 * time.Second)
	if typ, code := join(t, addr, short); typ != "error" || code != "unauthorized" {
		t.Errorf("an expired minted token: %s %s, want error unauthorized", typ, code)
	}
}

// Usage mistakes exit 2 with the reason; no token is printed.
func TestToken_UsageErrors(t *testing.T) {
	environ := []string{"HALO_AUTH_SECRET=" + strings.Repeat("5ec7e7", 8)}
	for _, tt := range []struct {
		args    []string
		environ []string
		want    string
	}{
		{[]string{"--room", "demo"}, environ, "--identity is required"},
		{[]string{"--identity", "a"}, environ, "--room is required"},
		{[]string{"--identity", "a", "--moderate"}, environ, "--moderate needs --room"},
		{[]string{"--room", "demo", "--identity", "a", "--ttl", "-1s"}, environ, "--ttl"},
		{[]string{"--room", "no spaces", "--identity", "a"}, environ, "room"},
		{[]string{"--room", "demo", "--identity", "a", "--bogus"}, environ, "bogus"},
		{[]string{"--room", "demo", "--identity", "a"}, nil, "HALO_AUTH_SECRET"},
	} {
		var out, errOut testutil.SyncBuffer
		code := run(context.Background(), append([]string{"token"}, tt.args...), tt.environ, &out, &errOut)
		if code != 2 || !strings.Contains(errOut.String(), tt.want) || out.String() != "" {
			t.Errorf("token %q: exit %d, stdout %q, stderr %q; want exit 2 naming %q", tt.args, code, out.String(), errOut.String(), tt.want)
		}
	}
}

// A chat and a reaction reach the room with the sender's token identity
// (sub) beside its participant id and name: an app moderates the person.
func TestChat_EventsCarryTheSendersIdentity(t *testing.T) {
	environ := []string{"HALO_AUTH_SECRET=" + strings.Repeat("5ec7e7", 8)}
	addr := startProductionNode(t, environ)
	c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	type message struct {
		Type string
		Data struct {
			ParticipantID                     string `json:"participant_id"`
			Identity, Name, Text, Emoji, Code string
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	next := func(typ string) message {
		t.Helper()
		for {
			var m message
			if err := c.ReadJSON(&m); err != nil {
				t.Fatalf("waiting for %s: %v", typ, err)
			}
			if m.Type == typ || m.Type == "error" {
				return m
			}
		}
	}
	tok := mint(t, environ, "--room", "demo", "--identity", "user-42", "--name", "Alice")
	send := func(typ string, data map[string]any) {
		t.Helper()
		if err := c.WriteJSON(map[string]any{"v": 1, "type": typ, "data": data}); err != nil {
			t.Fatal(err)
		}
	}
	send("join", map[string]any{"token": tok})
	var joined struct {
		Data struct {
			ParticipantID string `json:"participant_id"`
		}
	}
	if err := c.ReadJSON(&joined); err != nil || joined.Data.ParticipantID == "" {
		t.Fatalf("join: %+v %v", joined, err)
	}
	send("chat", map[string]any{"text": "hello"})
	if m := next("chat"); m.Type != "chat" || m.Data.Identity != "user-42" || m.Data.Name != "Alice" ||
		m.Data.ParticipantID != joined.Data.ParticipantID || m.Data.Text != "hello" {
		t.Errorf("chat event %+v, want identity user-42, name Alice, participant %s", m, joined.Data.ParticipantID)
	}
	send("reaction", map[string]any{"emoji": "👏"})
	if m := next("reaction"); m.Type != "reaction" || m.Data.Identity != "user-42" || m.Data.Name != "Alice" || m.Data.Emoji != "👏" {
		t.Errorf("reaction event %+v, want identity user-42, name Alice", m)
	}
}

// apiCall calls the server API on addr with tok and returns the status and
// the body's error code, if any.
func apiCall(t *testing.T, method, url, tok string) (status int, code string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Error struct{ Code string }
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Error.Code
}

// halo-sfu token --moderate mints the room-scoped moderate grant as the
// server API takes it: on its own room it lists the participants and
// removes one (whose socket is told "removed"); on another room, and for
// the cluster's room list, it is refused with 403 forbidden. --admin
// without a room may list every room.
func TestToken_ModerateActsOnItsOwnRoomOnly(t *testing.T) {
	environ := []string{"HALO_AUTH_SECRET=" + strings.Repeat("5ec7e7", 8)}
	addr := startProductionNode(t, environ)
	base := "http://" + addr + "/api/v1/"

	c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WriteJSON(map[string]any{"v": 1, "type": "join", "id": 1,
		"data": map[string]any{"token": mint(t, environ, "--room", "demo", "--identity", "troll")}}); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	var joined struct{ Type string }
	if err := c.ReadJSON(&joined); err != nil || joined.Type != "joined" {
		t.Fatalf("join: %+v %v", joined, err)
	}

	mod := mint(t, environ, "--room", "demo", "--identity", "mod-1", "--moderate", "--subscribe=false")
	if st, code := apiCall(t, http.MethodGet, base+"rooms/demo/participants", mod); st != http.StatusOK {
		t.Errorf("moderate token, its own room's participants: %d %s, want 200", st, code)
	}
	for _, u := range []string{base + "rooms/elsewhere", base + "rooms/elsewhere/participants", base + "rooms"} {
		if st, code := apiCall(t, http.MethodGet, u, mod); st != http.StatusForbidden || code != "forbidden" {
			t.Errorf("moderate token for demo, GET %s: %d %q, want 403 forbidden", u, st, code)
		}
	}
	if st, code := apiCall(t, http.MethodDelete, base+"rooms/elsewhere/participants/troll", mod); st != http.StatusForbidden || code != "forbidden" {
		t.Errorf("moderate token for demo, removing in another room: %d %q, want 403 forbidden", st, code)
	}
	viewer := mint(t, environ, "--room", "demo", "--identity", "bob")
	if st, code := apiCall(t, http.MethodDelete, base+"rooms/demo/participants/troll", viewer); st != http.StatusForbidden || code != "forbidden" {
		t.Errorf("a viewer's token removing in its room: %d %q, want 403 forbidden", st, code)
	}
	if st, code := apiCall(t, http.MethodDelete, base+"rooms/demo/participants/troll?reason=spam", mod); st != http.StatusOK {
		t.Fatalf("moderate token removing in its own room: %d %q, want 200", st, code)
	}
	for {
		var m struct {
			Type string
			Data struct{ Reason string }
		}
		if err := c.ReadJSON(&m); err != nil {
			t.Fatalf("the removed client's socket ended before \"removed\": %v", err)
		}
		if m.Type == "removed" {
			if m.Data.Reason != "spam" {
				t.Errorf("removed %+v, want reason spam", m)
			}
			break
		}
	}

	admin := mint(t, environ, "--identity", "ops", "--admin")
	if st, code := apiCall(t, http.MethodGet, base+"rooms", admin); st != http.StatusOK {
		t.Errorf("admin token, the room list: %d %q, want 200", st, code)
	}
}
