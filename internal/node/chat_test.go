package node

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/loadtest"
	"github.com/halobuzz/live/signaling/auth"
)

// joinAs opens a socket and joins room with token, claiming name in join.
func joinAs(t *testing.T, ctx context.Context, n *testNode, token, name string) (*loadtest.Conn, loadtest.Joined) {
	t.Helper()
	c := n.dial(t, ctx)
	f := false
	env, err := c.Request(ctx, "join", loadtest.JoinRequest{Token: token, Name: name, AutoSubscribe: &f})
	if err != nil {
		t.Fatal(err)
	}
	var j loadtest.Joined
	if err := env.Decode(&j); err != nil {
		t.Fatal(err)
	}
	return c, j
}

// nextOf returns the next event of type typ on c.
func nextOf(t *testing.T, ctx context.Context, c *loadtest.Conn, typ string) loadtest.Envelope {
	t.Helper()
	for {
		env, err := c.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for %s: %v", typ, err)
		}
		if env.Type == typ {
			return env
		}
	}
}

// A sender's name comes from its token: a client that claims another name
// in join is still shown to the others under the token's name. A token
// without a name lets the client choose.
func TestChat_NamesComeFromTheToken(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	mallory, mj := joinAs(t, ctx, n, n.token("names", "alice", false, true), "The Admin")
	if mj.Name != "alice" {
		t.Fatalf("joined says the name is %q; the token says alice", mj.Name)
	}
	noName, err := n.signer.Sign(auth.Claims{
		Identity: "u-17", Room: "names", Grants: auth.Grants{Subscribe: true},
		ExpiresAt: time.Now().Add(time.Hour), IssuedAt: time.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	bob, bj := joinAs(t, ctx, n, noName, "Bob")
	if bj.Name != "Bob" {
		t.Fatalf("a token without a name: joined says %q, want the chosen Bob", bj.Name)
	}

	if _, err := mallory.Send(loadtest.TypeChat, loadtest.ChatMessage{Text: "trust me"}); err != nil {
		t.Fatal(err)
	}
	var m loadtest.ChatMessage
	if err := nextOf(t, ctx, bob, loadtest.TypeChat).Decode(&m); err != nil {
		t.Fatal(err)
	}
	if m.Name != "alice" || m.ParticipantID != mj.ParticipantID || m.Text != "trust me" {
		t.Fatalf("chat shown to others as %+v; want alice's name from the token", m)
	}
	if _, err := mallory.Send(loadtest.TypeReaction, loadtest.Reaction{Emoji: "👏🏽"}); err != nil {
		t.Fatal(err)
	}
	var r loadtest.Reaction
	if err := nextOf(t, ctx, bob, loadtest.TypeReaction).Decode(&r); err != nil {
		t.Fatal(err)
	}
	if r.Name != "alice" || r.Emoji != "👏🏽" || r.ParticipantID != mj.ParticipantID {
		t.Fatalf("reaction shown as %+v", r)
	}
	if _, err := bob.Send(loadtest.TypeChat, loadtest.ChatMessage{Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	for m.Text != "hi" {
		if err := nextOf(t, ctx, mallory, loadtest.TypeChat).Decode(&m); err != nil {
			t.Fatal(err)
		}
	}
	if m.Name != "Bob" {
		t.Fatalf("chat of the nameless token shown as %+v", m)
	}
}

// Over the room's rate of chat and reactions the sender gets
// room_rate_limited for each refused message, nobody receives it, and the
// socket stays open. (That the budget is the room's, shared by its
// participants, is room.TestRoomMessageRate.)
func TestChat_RoomRateLimit(t *testing.T) {
	n := startNode(t, func(c *config.Config) {
		c.Limits.RoomMessagesPerSecond = 1
		c.Limits.RoomMessagesBurst = 2
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, _ := joinAs(t, ctx, n, n.token("busy", "a", false, true), "")
	b, _ := joinAs(t, ctx, n, n.token("busy", "b", false, true), "")
	// Eight messages at once: two fit the burst, the rest only as the rate
	// refills (one a second). The per-socket limit (50/s) is far away.
	const sent = 8
	texts := map[int64]string{}
	for i := range sent {
		text := fmt.Sprintf("m%d", i)
		var id int64
		var err error
		if i%4 == 3 {
			text = "🔥" + text
			id, err = a.Send(loadtest.TypeReaction, loadtest.Reaction{Emoji: text})
		} else {
			id, err = a.Send(loadtest.TypeChat, loadtest.ChatMessage{Text: text})
		}
		if err != nil {
			t.Fatal(err)
		}
		texts[id] = text
	}
	// Each message comes back to a: as itself (accepted: chat goes to the
	// sender too) or as an error answering its id.
	accepted := map[string]bool{}
	refused := 0
	for outcomes := 0; outcomes < sent; outcomes++ {
		env, err := a.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		_ = env.Decode(&m)
		switch env.Type {
		case loadtest.TypeError:
			if m["code"] != "room_rate_limited" || texts[env.ID] == "" {
				t.Fatalf("error %v for message id %d", m, env.ID)
			}
			refused++
		case loadtest.TypeChat:
			accepted[m["text"].(string)] = true
		case loadtest.TypeReaction:
			accepted[m["emoji"].(string)] = true
		default:
			outcomes--
		}
	}
	if refused == 0 || len(accepted) < 2 {
		t.Fatalf("%d accepted, %d refused of %d messages sent at once with a burst of 2", len(accepted), refused, sent)
	}
	// The socket is still usable: a request gets its ordinary answer.
	var pe *loadtest.ProtocolError
	if _, err := a.Request(ctx, loadtest.TypeSubscribe, loadtest.TrackIDs{TrackIDs: []string{"t_nope"}}); !errors.As(err, &pe) || pe.Code != "unknown_track" {
		t.Fatalf("after room_rate_limited the socket answers %v, want unknown_track", err)
	}
	// b received exactly the accepted messages. Its answer below comes
	// after everything the server sent b before it.
	if _, err := b.Request(ctx, loadtest.TypeSubscribe, loadtest.TrackIDs{TrackIDs: []string{"t_nope"}}); !errors.As(err, &pe) {
		t.Fatal(err)
	}
	drained, stop := context.WithCancel(ctx)
	stop()
	got := map[string]bool{}
	for {
		env, err := b.Next(drained) // queued events first, then the cancelled context
		if err != nil {
			break
		}
		var m map[string]any
		_ = env.Decode(&m)
		if env.Type == loadtest.TypeChat {
			got[m["text"].(string)] = true
		} else if env.Type == loadtest.TypeReaction {
			got[m["emoji"].(string)] = true
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(accepted) {
		t.Fatalf("the room received %v; the sender was told %v were accepted", got, accepted)
	}
}
