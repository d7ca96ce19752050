package signaling

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
)

// whepAs posts a WHEP offer that will never connect (a Pion peer that never
// reads the answer) for roomName, as the client address xff says (through
// the trusted proxy 127.0.0.1; "" is the proxy itself), and returns the
// status, Retry-After, body and Location.
func whepAs(t *testing.T, ts *testServer, roomName, token, xff string) (int, string, string, string) {
	t.Helper()
	req, err := http.NewRequest("POST", ts.url+"/whep/"+roomName, strings.NewReader(edgeOffer(t)))
	if err != nil {
		t.Fatal(err)
	}
	req.Close = true
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", mimeSDP)
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(b), resp.Header.Get("Location")
}

// mustWHEP posts a never-connecting WHEP offer that must be accepted, and
// returns its resource URL.
func mustWHEP(t *testing.T, ts *testServer, roomName, token, xff, what string) string {
	t.Helper()
	status, _, body, loc := whepAs(t, ts, roomName, token, xff)
	if status != http.StatusCreated {
		t.Fatalf("%s: %d %q, want 201", what, status, body)
	}
	return ts.url + loc
}

// mustRefuse posts a never-connecting WHEP offer that must be refused as
// too many pending sessions: 429, Retry-After, the code first in the body.
func mustRefuse(t *testing.T, ts *testServer, roomName, token, xff, what string) string {
	t.Helper()
	status, retry, body, _ := whepAs(t, ts, roomName, token, xff)
	if status != http.StatusTooManyRequests || retry == "" || !strings.HasPrefix(body, CodeTooManyPending+": ") {
		t.Fatalf("%s: %d Retry-After %q %q, want 429 with Retry-After and %s", what, status, retry, body, CodeTooManyPending)
	}
	return body
}

// With limits.pending_sessions_per_ip at 3, an address holds at most three
// WHEP sessions that have not connected: the fourth is refused 429 with
// Retry-After, another address is not affected, a DELETE of a pending
// session frees its place, a real viewer whose media flows holds none, and
// sessions that never connect give theirs back when the room ends them.
func TestWHEP_PendingSessionsCappedPerAddress(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.Limits.PendingSessionsPerIP = 3
		c.Limits.PendingSessionsPerRoom = 0
		c.HTTP.TrustedProxies = []string{"127.0.0.1"}
	})
	const roomName = "fakes"
	broadcastWith(t, ts, roomName, ts.token(t, "star", roomName, true))
	tok := ts.token(t, "fan", roomName, false)

	// A real viewer from 127.0.0.1 counts while it connects, and not once
	// its media flows.
	viewer := loadtest.NewViewer(loadtest.ViewerConfig{WHEPURL: ts.url + "/whep/" + roomName, Token: tok})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := viewer.Start(ctx); err != nil {
		t.Fatalf("WHEP viewer: %v", err)
	}
	defer viewer.Close()
	if err := viewer.WaitTracks(ctx, 2); err != nil {
		t.Fatalf("WHEP viewer got no media: %v", err)
	}
	testutil.Eventually(t, "the connected viewer is no longer pending", func() bool {
		ofIP, _, _, _ := ts.s.pending.counts("127.0.0.1", roomName)
		return ofIP == 0
	})
	for i := range 3 {
		mustWHEP(t, ts, roomName, tok, "", "pending session "+string(rune('1'+i))+" beside a connected viewer")
	}
	mustRefuse(t, ts, roomName, tok, "", "a fourth pending session from 127.0.0.1")

	// Address A fills its three places; B is not affected by A's cap.
	const a, b = "203.0.113.7", "198.51.100.9"
	var first string
	for i := range 3 {
		loc := mustWHEP(t, ts, roomName, tok, a, "A's pending session")
		if i == 0 {
			first = loc
		}
	}
	body := mustRefuse(t, ts, roomName, tok, a, "A's fourth pending session")
	if !strings.Contains(body, "address") {
		t.Errorf("the refusal %q does not say it is this address's cap", body)
	}
	mustWHEP(t, ts, roomName, tok, b, "B's session beside A at its cap")

	// A session ended while pending frees its place, once.
	if status, _, _ := do(t, "DELETE", first, "", "", ""); status != http.StatusOK {
		t.Fatalf("DELETE of a pending session: %d", status)
	}
	if status, _, _ := do(t, "DELETE", first, "", "", ""); status != http.StatusNotFound {
		t.Fatalf("second DELETE: %d, want 404", status)
	}
	mustWHEP(t, ts, roomName, tok, a, "A's session after a DELETE")
	mustRefuse(t, ts, roomName, tok, a, "A at its cap again")

	// Sessions that never connect are ended by the room (10 s) and give
	// their places back: nothing is left counted, no entry kept.
	testutil.EventuallyWithin(t, 30*time.Second, "every never-connecting session expired and was uncounted", func() bool {
		_, _, ips, rooms := ts.s.pending.counts("", "")
		return ips == 0 && rooms == 0
	})
	mustWHEP(t, ts, roomName, tok, a, "A's session after its others expired")
	if err := viewer.WaitTracks(ctx, 2); err != nil {
		t.Fatalf("the connected viewer lost its media: %v", err)
	}
}

// limits.pending_sessions_per_room holds across addresses: with 5 a room,
// 3 an address, A's three and B's two fill the room; B's third and C's
// first are refused though neither address is at its own cap.
func TestWHEP_PendingSessionsCappedPerRoom(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.Limits.PendingSessionsPerIP = 3
		c.Limits.PendingSessionsPerRoom = 5
		c.HTTP.TrustedProxies = []string{"127.0.0.1"}
	})
	const roomName = "crowded"
	broadcastWith(t, ts, roomName, ts.token(t, "star", roomName, true))
	tok := ts.token(t, "fan", roomName, false)
	for range 3 {
		mustWHEP(t, ts, roomName, tok, "203.0.113.7", "A's session")
	}
	var bLast string
	for range 2 {
		bLast = mustWHEP(t, ts, roomName, tok, "2001:db8:5:6::1", "B's session")
	}
	if body := mustRefuse(t, ts, roomName, tok, "2001:db8:5:6::2", "B's third session (same /64), the room full"); !strings.Contains(body, "room") {
		t.Errorf("the refusal %q does not say it is the room's cap", body)
	}
	mustRefuse(t, ts, roomName, tok, "192.0.2.1", "C's first session, the room full")
	if status, _, _ := do(t, "DELETE", bLast, "", "", ""); status != http.StatusOK {
		t.Fatalf("DELETE: %d", status)
	}
	mustWHEP(t, ts, roomName, tok, "192.0.2.1", "C's session after one of B's ended")
}

// wsConn is a WebSocket client of ts that reads the server's messages.
type wsConn struct {
	t    *testing.T
	conn *websocket.Conn
}

type wsMessage struct {
	Type string `json:"type"`
	ID   int64  `json:"id"`
	Data struct {
		Code string `json:"code"`
	} `json:"data"`
}

func dialWS(t *testing.T, ts *testServer) *wsConn {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(ts.url, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &wsConn{t: t, conn: conn}
}

func (c *wsConn) send(id int, typ string, data any) {
	c.t.Helper()
	if err := c.conn.WriteJSON(map[string]any{"id": id, "type": typ, "data": data}); err != nil {
		c.t.Fatal(err)
	}
}

// until reads messages until one of type typ (and id, when not 0), and
// returns it; it fails on an error message it did not ask for.
func (c *wsConn) until(typ string, id int64) wsMessage {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, b, err := c.conn.ReadMessage()
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", typ, err)
		}
		var m wsMessage
		if err := json.Unmarshal(b, &m); err != nil {
			c.t.Fatal(err)
		}
		if m.Type == typ && (id == 0 || m.ID == id) {
			return m
		}
		if m.Type == "error" {
			c.t.Fatalf("waiting for %s: error %s", typ, b)
		}
	}
}

// untilBoth reads messages until it has seen typ (with id) and other, in
// either order.
func (c *wsConn) untilBoth(typ string, id int64, other string) {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	seen, seenOther := false, false
	for !seen || !seenOther {
		_, b, err := c.conn.ReadMessage()
		if err != nil {
			c.t.Fatalf("waiting for %s and %s: %v", typ, other, err)
		}
		var m wsMessage
		if err := json.Unmarshal(b, &m); err != nil {
			c.t.Fatal(err)
		}
		switch {
		case m.Type == "error":
			c.t.Fatalf("waiting for %s and %s: error %s", typ, other, b)
		case m.Type == typ && m.ID == id:
			seen = true
		case m.Type == other:
			seenOther = true
		}
	}
}

// A WebSocket viewer is pending from the server's offer until its
// subscriber connection is up: with one place an address, a second viewer's
// subscribe is refused too_many_pending (not fatal: the socket stays), and
// succeeds once the first viewer's socket ended.
func TestWS_SubscribeBeyondPendingCapIsRefused(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.Limits.PendingSessionsPerIP = 1
		c.Limits.PendingSessionsPerRoom = 0
	})
	const roomName = "wsfakes"
	broadcastWith(t, ts, roomName, ts.token(t, "star", roomName, true))

	first := dialWS(t, ts)
	first.send(1, "join", map[string]any{"token": ts.token(t, "bot-1", roomName, false)})
	first.until("joined", 1)
	first.until("offer", 0) // never answered: pending

	second := dialWS(t, ts)
	second.send(1, "join", map[string]any{"token": ts.token(t, "bot-2", roomName, false), "auto_subscribe": false})
	second.until("joined", 1)
	second.send(2, "subscribe", map[string]any{})
	if m := second.until("error", 2); m.Data.Code != CodeTooManyPending {
		t.Fatalf("subscribe beyond the cap: error %q, want %s", m.Data.Code, CodeTooManyPending)
	}
	second.send(3, "stats", nil)
	second.until("stats", 3) // the session goes on

	_ = first.conn.Close()
	testutil.Eventually(t, "the first viewer's place is given back", func() bool {
		ofIP, _, _, _ := ts.s.pending.counts("127.0.0.1", roomName)
		return ofIP == 0
	})
	second.send(4, "subscribe", map[string]any{})
	second.untilBoth("subscribed", 4, "offer") // the offer goes out first, from within the subscribe
	if ofIP, _, _, _ := ts.s.pending.counts("127.0.0.1", roomName); ofIP != 1 {
		t.Fatalf("the offered viewer counts %d pending, want 1", ofIP)
	}
	// A join's automatic subscription is refused the same way, after joined.
	third := dialWS(t, ts)
	third.send(1, "join", map[string]any{"token": ts.token(t, "bot-3", roomName, false)})
	third.until("joined", 1)
	if m := third.until("error", 1); m.Data.Code != CodeTooManyPending {
		t.Fatalf("join's subscription beyond the cap: error %q, want %s", m.Data.Code, CodeTooManyPending)
	}
}

// A subscription that offers nothing (a room without a broadcast yet) holds
// no place: viewers waiting for a show are not refused for waiting.
func TestWS_WaitingViewersHoldNoPendingPlace(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.Limits.PendingSessionsPerIP = 1
		c.Limits.PendingSessionsPerRoom = 1
	})
	const roomName = "soon"
	for i := range 3 {
		c := dialWS(t, ts)
		c.send(1, "join", map[string]any{"token": ts.token(t, "early-"+string(rune('a'+i)), roomName, false)})
		c.until("joined", 1)
		c.send(2, "stats", nil)
		c.until("stats", 2) // no error came before it
	}
	if _, ofRoom, _, _ := ts.s.pending.counts("127.0.0.1", roomName); ofRoom != 0 {
		t.Fatalf("waiting viewers count %d pending, want 0", ofRoom)
	}
}

// The per-address key of the pending caps is the per-IP limits' key: an
// IPv4 address, an IPv6 /64; loopback is exempt in dev mode only.
func TestPendingKey_IPv6GroupsBySlash64(t *testing.T) {
	s := &Server{}
	for _, tc := range []struct{ a, b string }{
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"},
		{"2001:db8:1:2::1", "2001:db8:1:2:abcd::7"},
		{"203.0.113.7", "203.0.113.7"},
	} {
		if ka, kb := s.pendingKey(tc.a), s.pendingKey(tc.b); ka != kb {
			t.Errorf("%s -> %s and %s -> %s: want one key", tc.a, ka, tc.b, kb)
		}
	}
	for _, tc := range []struct{ a, b string }{
		{"2001:db8:1:2::1", "2001:db8:1:3::1"},
		{"203.0.113.7", "203.0.113.8"},
	} {
		if ka, kb := s.pendingKey(tc.a), s.pendingKey(tc.b); ka == kb {
			t.Errorf("%s and %s share the key %s", tc.a, tc.b, ka)
		}
	}
	if k := s.pendingKey("127.0.0.1"); k != "127.0.0.1" {
		t.Errorf("loopback outside dev mode -> %q, want counted", k)
	}
	dev := &Server{cfg: Config{Dev: true}}
	if k := dev.pendingKey("::1"); k != "" {
		t.Errorf("loopback in dev mode -> %q, want not counted", k)
	}
}

// The counts are exact under concurrency: admissions and releases from
// many goroutines, each release called twice, leave nothing counted and no
// entry behind; the caps are never exceeded except by forced admissions.
func TestPendingSessions_ExactUnderConcurrency(t *testing.T) {
	p := newPendingSessions(4, 10)
	var wg sync.WaitGroup
	var mu sync.Mutex
	maxIP, maxRoom := 0, 0
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ip := []string{"10.0.0.1", "10.0.0.2", "2001:db8::/64"}[g%3]
			for i := range 500 {
				slot, e := p.admit(ip, "r", false)
				if e != nil {
					if e.Code != CodeTooManyPending || e.Fatal {
						t.Errorf("refusal %+v", e)
					}
					continue
				}
				ofIP, ofRoom, _, _ := p.counts(ip, "r")
				mu.Lock()
				maxIP, maxRoom = max(maxIP, ofIP), max(maxRoom, ofRoom)
				mu.Unlock()
				if i%2 == 0 {
					slot.release()
				}
				slot.release()
			}
		}()
	}
	wg.Wait()
	if maxIP > 4 || maxRoom > 10 {
		t.Errorf("seen %d pending of one address and %d of the room, caps 4 and 10", maxIP, maxRoom)
	}
	if _, _, ips, rooms := p.counts("", ""); ips != 0 || rooms != 0 {
		t.Fatalf("%d addresses and %d rooms still counted after every release", ips, rooms)
	}
	// Forced admissions count beyond the cap, and are given back.
	var slots []*pendingSlot
	for range 6 {
		s, e := p.admit("10.0.0.1", "r", true)
		if e != nil {
			t.Fatalf("forced admission refused: %v", e)
		}
		slots = append(slots, s)
	}
	if ofIP, _, _, _ := p.counts("10.0.0.1", "r"); ofIP != 6 {
		t.Fatalf("forced: %d counted, want 6", ofIP)
	}
	if _, e := p.admit("10.0.0.1", "r", false); e == nil {
		t.Fatal("admitted over the cap")
	}
	for _, s := range slots {
		s.release()
	}
	if _, _, ips, rooms := p.counts("", ""); ips != 0 || rooms != 0 {
		t.Fatalf("%d addresses and %d rooms left after the forced ones", ips, rooms)
	}
	// A cap of 0 is no cap.
	free := newPendingSessions(0, 0)
	for range 100 {
		if _, e := free.admit("10.0.0.1", "r", false); e != nil {
			t.Fatalf("no cap refused: %v", e)
		}
	}
}

// FuzzPendingKey: any client address string (RemoteAddr when it does not
// parse) gets a key without a panic, and an IPv6 address shares it with
// every address of its /64.
func FuzzPendingKey(f *testing.F) {
	for _, s := range []string{"203.0.113.7", "2001:db8:1:2::1", "fe80::1%eth0", "::ffff:10.0.0.1", "garbage", "", "[::1]:80"} {
		f.Add(s)
	}
	s := &Server{}
	f.Fuzz(func(t *testing.T, ip string) {
		k := s.pendingKey(ip)
		a, err := netip.ParseAddr(ip)
		if err != nil || !a.Is6() || a.Is4In6() {
			return
		}
		b := a.As16()
		b[15] ^= 0xff
		b[8] ^= 0x01
		if other := s.pendingKey(netip.AddrFrom16(b).WithZone(a.Zone()).String()); other != k {
			t.Fatalf("%s -> %s, but %s of its /64 -> %s", ip, k, netip.AddrFrom16(b), other)
		}
	})
}
