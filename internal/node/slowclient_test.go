package node

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
)

// A client that stops reading is disconnected once its send queue is full;
// it never slows the room: the other participant keeps chatting and
// receiving.
func TestSlowClient_IsDroppedNotWaitedFor(t *testing.T) {
	n := startNode(t, func(c *config.Config) {
		c.Signaling.SendQueue = 64
		c.Limits.MessagesPerSecond = 1 << 20
		c.Limits.RoomMessagesPerSecond = 0 // unlimited: this test floods the room with chat on purpose
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// The slow client joins, then never reads again.
	slow, _, err := websocket.DefaultDialer.DialContext(ctx, n.wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	join, _ := json.Marshal(map[string]any{"v": 1, "type": "join", "id": 1, "data": map[string]any{"token": n.token("slow", "slow", false, true)}})
	if err := slow.WriteMessage(websocket.TextMessage, join); err != nil {
		t.Fatal(err)
	}
	if _, _, err := slow.ReadMessage(); err != nil { // joined
		t.Fatal(err)
	}

	fast := n.dial(t, ctx)
	if _, err := fast.Request(ctx, "join", loadtest.JoinRequest{Token: n.token("slow", "fast", false, true)}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "both in the room", func() bool { return n.rooms.Stats().Participants == 2 })
	text := strings.Repeat("x", 1000)
	for i := 0; n.rooms.Stats().Participants == 2; i++ {
		if i > 200000 {
			t.Fatal("slow client never dropped")
		}
		if _, err := fast.Send("chat", map[string]string{"text": text}); err != nil {
			t.Fatalf("fast client cut off: %v", err)
		}
		// Read our own copy back: the fast client keeps up with its queue.
		for {
			env, err := fast.Next(ctx)
			if err != nil {
				t.Fatalf("fast client cut off: %v", err)
			}
			if env.Type == "chat" {
				break
			}
		}
	}
	// The fast client is still served.
	if _, err := fast.Request(ctx, "subscribe", loadtest.TrackIDs{}); err != nil {
		t.Fatalf("fast client after the drop: %v", err)
	}
}
