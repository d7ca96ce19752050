package webhook

import (
	"context"
	"testing"
)

func receiveAll(t *testing.T, q Queue) []Delivery {
	t.Helper()
	ctx := context.Background()
	var out []Delivery
	for {
		ds, err := q.Receive(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			return out
		}
		for _, d := range ds {
			if err := q.Ack(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, ds...)
	}
}

// texts is what the deliveries carry, "seq:event".
func texts(ds []Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, string(rune('0'+d.Seq))+":"+string(d.Event))
	}
	return out
}

// QueueContract checks the semantics every Queue has: memberships emit
// their edges once, Once keys, per-room numbering, ForgetNode.
func QueueContract(t *testing.T, q Queue) {
	ctx := context.Background()
	enter := func(room, set, member string, edge, ev, lostEdge, lostEv string) Op {
		b := func(s string) []byte {
			if s == "" {
				return nil
			}
			return []byte(s)
		}
		return Op{Room: room, Set: set, Member: member, Enter: true, Edge: b(edge), Event: b(ev), LostEdge: b(lostEdge), LostEvent: b(lostEv)}
	}
	leave := func(room, set, member string, edge, ev string) Op {
		op := Op{Room: room, Set: set, Member: member, Edge: []byte(edge)}
		if ev != "" {
			op.Event = []byte(ev)
		}
		return op
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Two nodes serve room a at once: one room_started.
	must(q.Append(ctx, enter("a", SetNodes, Member("n1", ""), "started", "", "lost-finished", "")))
	must(q.Append(ctx, enter("a", SetNodes, Member("n2", ""), "started", "", "lost-finished", "")))
	must(q.Append(ctx, enter("a", SetTracks, Member("n1", "t1"), "bstart", "pub1", "lost-bend", "lost-unpub1")))
	must(q.Append(ctx, enter("a", SetTracks, Member("n1", "t1"), "bstart", "pub1", "lost-bend", "lost-unpub1"))) // again: nothing
	must(q.Append(ctx, enter("a", SetTracks, Member("n2", "t2"), "bstart", "pub2", "lost-bend", "lost-unpub2")))
	must(q.Append(ctx, Op{Room: "a", Event: []byte("vc"), Once: "vc|a|1"}, Op{Room: "a", Event: []byte("vc-again"), Once: "vc|a|1"}))
	must(q.Append(ctx, leave("a", SetTracks, Member("n2", "t2"), "bend", "unpub2")))
	must(q.Append(ctx, leave("a", SetNodes, Member("n2", ""), "finished", "")))
	// n1 is lost: its track, then the broadcast and the room end.
	must(q.ForgetNode(ctx, "n1"))
	must(q.ForgetNode(ctx, "n1")) // again: nothing
	must(q.Append(ctx, Op{Room: "b", Event: []byte("other room")}))
	got := texts(receiveAll(t, q))
	want := []string{"1:started", "2:bstart", "3:pub1", "4:pub2", "5:vc", "6:unpub2", "7:lost-unpub1", "8:lost-bend", "9:lost-finished", "1:other room"}
	if len(got) != len(want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %q\nwant %q", got, want)
		}
	}
	if n, err := q.Depth(ctx); err != nil || n != 0 {
		t.Fatalf("depth after every ack: %d, %v", n, err)
	}
}

func TestMemoryQueue_Contract(t *testing.T) { QueueContract(t, NewMemoryQueue(100)) }

func TestMemoryQueue_FullDropsNewEventsKeepsMemberships(t *testing.T) {
	q := NewMemoryQueue(2)
	ctx := context.Background()
	if err := q.Append(ctx, Op{Room: "a", Event: []byte("1")}, Op{Room: "a", Event: []byte("2")}); err != nil {
		t.Fatal(err)
	}
	if err := q.Append(ctx, Op{Room: "a", Set: SetNodes, Member: "n|", Enter: true, Edge: []byte("started")}); err != ErrQueueFull {
		t.Fatalf("a third event: %v, want ErrQueueFull", err)
	}
	if n, _ := q.Depth(ctx); n != 2 {
		t.Fatalf("depth %d, want 2", n)
	}
	receiveAll(t, q)
	// The room was entered (the event was dropped): its end is told.
	if err := q.Append(ctx, Op{Room: "a", Set: SetNodes, Member: "n|", Edge: []byte("finished")}); err != nil {
		t.Fatal(err)
	}
	if got := texts(receiveAll(t, q)); len(got) != 1 || got[0] != "4:finished" {
		t.Fatalf("got %q", got)
	}
}
