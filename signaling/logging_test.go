package signaling

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	"github.com/halobuzz/live/signaling/auth"
)

// wsSession joins roomName over a WebSocket with token in the URL's query
// and in the join message, refreshes to refresh, then sends a join again
// (refused), and leaves. It returns the codes of the errors it was sent.
func wsSession(t *testing.T, ts *testServer, roomName, token, refresh string) []string {
	t.Helper()
	u := "ws" + strings.TrimPrefix(ts.url, "http") + "/ws?token=" + token + "&room=" + roomName
	conn, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	send := func(id int, typ string, data any) {
		// The server may end the session after a refused message (the
		// socket then closes under the next write): what it read is
		// logged, and the searches below check that the expected lines
		// are there. Only the first write must succeed.
		if err := conn.WriteJSON(map[string]any{"id": id, "type": typ, "data": data}); err != nil && id == 1 {
			t.Fatal(err)
		}
	}
	send(1, "join", map[string]any{"token": token, "room": roomName, "auto_subscribe": false})
	send(2, "refresh", map[string]any{"token": refresh})
	send(3, "join", map[string]any{"token": token, "room": roomName})
	send(4, "leave", nil)
	var codes []string
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var env struct {
			Type string `json:"type"`
			Data struct {
				Code string `json:"code"`
			} `json:"data"`
		}
		if err := conn.ReadJSON(&env); err != nil {
			return codes
		}
		if env.Type == "error" {
			codes = append(codes, env.Data.Code)
		}
	}
}

// No token, nor a secret, reaches the log at any level: a server logging at
// debug serves a WebSocket join (the token in the query and in the
// message, a refresh, a refused second join, a join with a forged token), a
// WHIP broadcast and a WHEP viewer with bearer tokens, a WHEP request with
// a token for another room, and relay requests (served, replayed, ended).
// The whole log is searched for every token, its signature alone, and both
// secrets.
func TestLogs_NoTokenOrSecretAtAnyLevel(t *testing.T) {
	ts := startServer(t, nil)
	const roomName = "secrets"
	tokens := map[string]string{
		"ws":             ts.token(t, "ws-user", roomName, false),
		"refresh":        ts.token(t, "ws-user", roomName, false),
		"whip":           ts.token(t, "star", roomName, true),
		"whep":           ts.token(t, "fan", roomName, false),
		"whep-elsewhere": ts.token(t, "fan", "another-room", false),
	}
	forger, err := auth.NewSigner([]byte(strings.Repeat("f", 40)))
	if err != nil {
		t.Fatal(err)
	}
	if tokens["forged"], err = forger.Sign(auth.Claims{Identity: "mallory", Room: roomName, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}

	_, ids := broadcastWith(t, ts, roomName, tokens["whip"])
	if codes := wsSession(t, ts, roomName, tokens["ws"], tokens["refresh"]); len(codes) != 1 || codes[0] != CodeAlreadyJoined {
		t.Fatalf("WebSocket session errors %v, want the second join's %s only", codes, CodeAlreadyJoined)
	}
	if codes := wsSession(t, ts, roomName, tokens["forged"], tokens["forged"]); len(codes) == 0 || codes[0] != CodeUnauthorized {
		t.Fatalf("join with a forged token: errors %v, want %s", codes, CodeUnauthorized)
	}

	viewer := loadtest.NewViewer(loadtest.ViewerConfig{WHEPURL: ts.url + "/whep/" + roomName, Token: tokens["whep"]})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := viewer.Start(ctx); err != nil {
		t.Fatalf("WHEP viewer: %v", err)
	}
	if err := viewer.WaitTracks(ctx, 2); err != nil {
		t.Fatalf("WHEP viewer got no media: %v", err)
	}
	_ = viewer.Close()
	if status, _, _ := do(t, "POST", ts.url+"/whep/"+roomName, tokens["whep-elsewhere"], mimeSDP, edgeOffer(t)); status != http.StatusForbidden {
		t.Fatalf("WHEP with a token for another room: %d, want 403", status)
	}
	if tokens["expired"], err = ts.s.Signer().Sign(auth.Claims{Identity: "late", Room: roomName,
		Grants: auth.Grants{Publish: true}, ExpiresAt: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := do(t, "POST", ts.url+"/whip/"+roomName, tokens["expired"], mimeSDP, edgeOffer(t)); status != http.StatusUnauthorized {
		t.Fatalf("WHIP with an expired token: %d, want 401", status)
	}
	// A client's token on the relay endpoint (signed with auth.secret).
	if status, _, _ := relayAsk(t, ts, tokens["whep"], roomName, ids, edgeOffer(t)); status != http.StatusUnauthorized {
		t.Fatalf("relay request with a client token: %d, want 401", status)
	}

	signer, err := auth.NewSigner([]byte(ts.cfg.Cluster.Secret))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"relay", "relay-delete"} {
		if tokens[name], err = relayToken(signer, "edge-b", roomName, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	offer := edgeOffer(t)
	for i, want := range []int{http.StatusCreated, http.StatusUnauthorized} {
		if status, _, body := relayAsk(t, ts, tokens["relay"], roomName, ids, offer); status != want {
			t.Fatalf("relay request #%d: %d %q, want %d", i+1, status, body, want)
		}
	}
	if status, _, _ := do(t, "DELETE", ts.url+"/relay/"+roomName+"/p_none", tokens["relay-delete"], "", ""); status != http.StatusNotFound {
		t.Fatalf("relay DELETE of an unknown relay: %d, want 404", status)
	}

	logs := ts.logs.String()
	// The log did record these requests, at debug and above: the search
	// below is over something.
	for _, want := range []string{`"level":"DEBUG"`, `"msg":"joined"`, `"msg":"token refreshed"`, `"msg":"whip session"`,
		`"msg":"whep session"`, `"msg":"relay served"`, `"msg":"relay token replayed"`, `"code":"unauthorized"`,
		`"msg":"POST /whip/secrets refused"`, `"msg":"POST /relay/secrets failed"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %s", want)
		}
	}
	secrets := map[string]string{"auth.secret": ts.cfg.Auth.Secret, "cluster.secret": ts.cfg.Cluster.Secret}
	for name, tok := range tokens {
		secrets[name+" token"] = tok
		secrets[name+" token's signature"] = tok[strings.LastIndexByte(tok, '.')+1:]
	}
	for name, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the log holds the %s", name)
		}
	}
	testutil.Eventually(t, "the relay and the viewer are gone", func() bool { return ts.rooms.Stats().Viewers == 0 })
}
