package webhook_test

import (
	"context"
	"testing"

	"github.com/halobuzz/live/signaling/webhook"
	"github.com/halobuzz/live/signaling/webhook/queuetest"
)

func TestMemoryQueue_Contract(t *testing.T) { queuetest.Contract(t, webhook.NewMemoryQueue(100)) }

func TestMemoryQueue_FullDropsNewEventsKeepsMemberships(t *testing.T) {
	q := webhook.NewMemoryQueue(2)
	ctx := context.Background()
	if err := q.Append(ctx, webhook.Op{Room: "a", Event: []byte("1")}, webhook.Op{Room: "a", Event: []byte("2")}); err != nil {
		t.Fatal(err)
	}
	if err := q.Append(ctx, webhook.Op{Room: "a", Set: webhook.SetNodes, Member: "n|", Enter: true, Edge: []byte("started")}); err != webhook.ErrQueueFull {
		t.Fatalf("a third event: %v, want ErrQueueFull", err)
	}
	if n, _ := q.Depth(ctx); n != 2 {
		t.Fatalf("depth %d, want 2", n)
	}
	queuetest.ReceiveAll(t, q)
	// The room was entered (its room_started dropped, seq 3 unused: the
	// receiver sees the gap): its end is still told.
	if err := q.Append(ctx, webhook.Op{Room: "a", Set: webhook.SetNodes, Member: "n|", Edge: []byte("finished")}); err != nil {
		t.Fatal(err)
	}
	if got := queuetest.Texts(queuetest.ReceiveAll(t, q)); len(got) != 1 || got[0] != "4:finished" {
		t.Fatalf("got %q", got)
	}
}
