package node

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/loadtest"
	"github.com/halobuzz/live/signaling/auth"
)

// validOffer is a real browser-shaped offer for the publish rows that must
// get past SDP checks.
const validOffer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n" +
	"a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n" +
	"a=setup:actpass\r\na=mid:0\r\na=sendonly\r\na=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\n"

// TestBadInput_EachGetsItsErrorCode sends a catalogue of bad messages, each on
// its own connection, and checks the documented error code; afterwards the
// node still serves a broadcast.
func TestBadInput_EachGetsItsErrorCode(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Limits.MaxMessageBytes = 4096 })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n.publisher(ctx, "ok", loadtest.PublisherConfig{VideoBitrate: 300_000})

	viewTok := n.token("room-a", "viewer", false, true)
	pubTok := n.token("room-a", "pub", true, false)
	expired, _ := n.signer.Sign(auth.Claims{Identity: "x", Room: "room-a", Grants: auth.Grants{Subscribe: true},
		ExpiresAt: time.Now().Add(-time.Hour), IssuedAt: time.Now().Add(-2 * time.Hour)})
	otherSigner, _ := auth.NewSigner([]byte(strings.Repeat("k", 40)))
	forged, _ := otherSigner.Sign(auth.Claims{Identity: "x", Room: "room-a", Grants: auth.Grants{Subscribe: true, Publish: true},
		ExpiresAt: time.Now().Add(time.Hour), IssuedAt: time.Now()})
	join := func(tok string) func(c *loadtest.Conn) error {
		return func(c *loadtest.Conn) error {
			_, err := c.Request(ctx, "join", loadtest.JoinRequest{Token: tok, Room: "room-a"})
			return err
		}
	}
	joined := func(tok string, then func(c *loadtest.Conn) error) func(c *loadtest.Conn) error {
		return func(c *loadtest.Conn) error {
			f := false
			if _, err := c.Request(ctx, "join", loadtest.JoinRequest{Token: tok, Room: "room-a", AutoSubscribe: &f}); err != nil {
				return err
			}
			return then(c)
		}
	}
	raw := func(frame string) func(c *loadtest.Conn) error {
		return func(c *loadtest.Conn) error {
			if err := c.SendRaw([]byte(frame)); err != nil {
				return err
			}
			env, err := c.Next(ctx)
			if err != nil {
				return err
			}
			if env.Type != "error" {
				return errors.New("expected an error, got " + env.Type)
			}
			var e struct{ Code, Message string }
			_ = env.Decode(&e)
			return &loadtest.ProtocolError{Code: e.Code, Message: e.Message}
		}
	}
	cases := []struct {
		name string
		do   func(c *loadtest.Conn) error
		code string
	}{
		{"malformed JSON", raw(`{"type": "join", `), "bad_json"},
		{"not an object", raw(`[1,2,3]`), "bad_json"},
		{"unsupported version", raw(`{"v": 2, "type": "join", "id": 1}`), "unsupported_version"},
		{"unknown method", raw(`{"v": 1, "type": "teleport", "id": 1}`), "unknown_type"},
		{"oversized message", raw(`{"v":1,"type":"chat","data":{"text":"` + strings.Repeat("x", 5000) + `"}}`), "message_too_large"},
		{"message before join", raw(`{"v":1,"type":"publish","id":3,"data":{"sdp":"x"}}`), "not_joined"},
		{"data of the wrong type", raw(`{"v":1,"type":"join","id":4,"data":{"token": 42}}`), "bad_request"},
		{"missing token", join(""), "unauthorized"},
		{"expired token", join(expired), "unauthorized"},
		{"forged token", join(forged), "unauthorized"},
		{"garbage token", join("not.a.jwt"), "unauthorized"},
		{"token for another room", func(c *loadtest.Conn) error {
			_, err := c.Request(ctx, "join", loadtest.JoinRequest{Token: viewTok, Room: "room-b"})
			return err
		}, "room_mismatch"},
		{"invalid room name", func(c *loadtest.Conn) error {
			_, err := c.Request(ctx, "join", loadtest.JoinRequest{Token: viewTok, Room: "../etc"})
			return err
		}, "bad_request"},
		{"second join", joined(viewTok, join(viewTok)), "already_joined"},
		{"publish without grant", joined(viewTok, func(c *loadtest.Conn) error {
			_, err := c.Request(ctx, "publish", loadtest.PublishRequest{SDP: validOffer})
			return err
		}), "forbidden"},
		{"subscribe without grant", joined(pubTok, func(c *loadtest.Conn) error {
			_, err := c.Request(ctx, "subscribe", loadtest.TrackIDs{})
			return err
		}), "forbidden"},
		{"invalid SDP", joined(pubTok, func(c *loadtest.Conn) error {
			_, err := c.Request(ctx, "publish", loadtest.PublishRequest{SDP: "v=0\r\nthis is not sdp"})
			return err
		}), "invalid_sdp"},
		{"unsupported codec", joined(pubTok, func(c *loadtest.Conn) error {
			_, err := c.Request(ctx, "publish", loadtest.PublishRequest{SDP: strings.Replace(validOffer, "VP8/90000", "theora/90000", 1)})
			return err
		}), "unsupported_codec"},
		{"subscribe to unknown track", joined(viewTok, func(c *loadtest.Conn) error {
			_, err := c.Request(ctx, "subscribe", loadtest.TrackIDs{TrackIDs: []string{"t_nope"}})
			return err
		}), "unknown_track"},
		{"answer without offer", joined(viewTok, func(c *loadtest.Conn) error {
			_, err := c.Request(ctx, "answer", map[string]string{"sdp": validOffer})
			return err
		}), "bad_request"},
		{"trickle to a bad target", joined(viewTok, func(c *loadtest.Conn) error {
			_, err := c.Request(ctx, "trickle", map[string]any{"target": "nowhere", "candidate": map[string]any{"candidate": "x"}})
			return err
		}), "bad_request"},
		{"empty chat", joined(viewTok, func(c *loadtest.Conn) error {
			_, err := c.Request(ctx, "chat", map[string]string{"text": "  "})
			return err
		}), "bad_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do(n.dial(t, ctx))
			if got := loadtest.ErrorCode(err); got != tc.code {
				t.Fatalf("error code %q (err %v), want %q", got, err, tc.code)
			}
		})
	}

	// The node still serves: a new viewer of the healthy room gets media.
	v := n.viewer(ctx, "ok", "after")
	if err := v.WaitTracks(ctx, 2); err != nil {
		t.Fatalf("node stopped serving after bad input: %v", err)
	}
}

// A fatal error closes the socket: the client sees its connection end.
func TestUnauthorized_ClosesTheConnection(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := n.dial(t, ctx)
	_, err := c.Request(ctx, "join", loadtest.JoinRequest{Token: "bad", Room: "x"})
	if loadtest.ErrorCode(err) != "unauthorized" {
		t.Fatalf("err = %v", err)
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("server kept the connection open after a fatal error")
	}
}

// Limits: a room holds at most limits.participants_per_room participants.
func TestRoomFull_RefusesTheNextParticipant(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Limits.ParticipantsPerRoom = 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 3 {
		c := n.dial(t, ctx)
		_, err := c.Request(ctx, "join", loadtest.JoinRequest{Token: n.token("full", "v", false, true)})
		if i < 2 && err != nil {
			t.Fatalf("join %d: %v", i, err)
		}
		if i == 2 && loadtest.ErrorCode(err) != "room_full" {
			t.Fatalf("third join: %v, want room_full", err)
		}
	}
}

// Limits: joins per IP per minute.
func TestJoinRateLimit(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Limits.JoinsPerIPPerMinute = 3 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var last error
	for range 4 {
		c := n.dial(t, ctx)
		_, last = c.Request(ctx, "join", loadtest.JoinRequest{Token: n.token("rl", "v", false, true)})
		_ = c.Close()
	}
	if loadtest.ErrorCode(last) != "rate_limited" {
		t.Fatalf("fourth join: %v, want rate_limited", last)
	}
}

// In dev mode the join limit spares loopback clients (local load tests).
func TestJoinRateLimit_DevModeSparesLoopback(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Dev = true; c.Limits.JoinsPerIPPerMinute = 3 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 6 {
		c := n.dial(t, ctx)
		_, err := c.Request(ctx, "join", loadtest.JoinRequest{Token: n.token("rl", "v", false, true)})
		_ = c.Close()
		if err != nil {
			t.Fatalf("join %d from loopback in dev mode: %v", i, err)
		}
	}
}

// A socket that never joins is closed with not_joined.
func TestSilentSocket_IsClosedWithoutJoin(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Signaling.JoinTimeout = 200 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := n.dial(t, ctx)
	env, err := c.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var d struct{ Code string }
	if env.Type != "error" || env.Decode(&d) != nil || d.Code != "not_joined" {
		t.Fatalf("got %s %s", env.Type, env.Data)
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("socket left open")
	}
}
