// Package queuetest checks an implementation of webhook.Queue against the
// semantics every queue has (Contract): the memory queue's tests and the
// Redis queue's run the same checks.
package queuetest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/signaling/webhook"
)

// ReceiveAll receives and acknowledges everything q holds for this node.
func ReceiveAll(t *testing.T, q webhook.Queue) []webhook.Delivery {
	t.Helper()
	ctx := context.Background()
	var out []webhook.Delivery
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

// Texts is what the deliveries carry, "seq:event" (seq below 10).
func Texts(ds []webhook.Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, string(rune('0'+d.Seq))+":"+string(d.Event))
	}
	return out
}

// Contract checks the semantics every Queue has: memberships emit
// their edges once, Once keys, per-room numbering, ForgetNode.
func Contract(t *testing.T, q webhook.Queue) {
	ctx := context.Background()
	enter := func(room, set, member string, edge, ev, lostEdge, lostEv string) webhook.Op {
		b := func(s string) []byte {
			if s == "" {
				return nil
			}
			return []byte(s)
		}
		return webhook.Op{Room: room, Set: set, Member: member, Enter: true, Edge: b(edge), Event: b(ev), LostEdge: b(lostEdge), LostEvent: b(lostEv)}
	}
	leave := func(room, set, member string, edge, ev string) webhook.Op {
		op := webhook.Op{Room: room, Set: set, Member: member, Edge: []byte(edge)}
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
	must(q.Append(ctx, enter("a", webhook.SetNodes, webhook.Member("n1", ""), "started", "", "lost-finished", "")))
	must(q.Append(ctx, enter("a", webhook.SetNodes, webhook.Member("n2", ""), "started", "", "lost-finished", "")))
	must(q.Append(ctx, enter("a", webhook.SetTracks, webhook.Member("n1", "t1"), "bstart", "pub1", "lost-bend", "lost-unpub1")))
	must(q.Append(ctx, enter("a", webhook.SetTracks, webhook.Member("n1", "t1"), "bstart", "pub1", "lost-bend", "lost-unpub1"))) // again: nothing
	must(q.Append(ctx, enter("a", webhook.SetTracks, webhook.Member("n2", "t2"), "bstart", "pub2", "lost-bend", "lost-unpub2")))
	must(q.Append(ctx, webhook.Op{Room: "a", Event: []byte("vc"), Once: "vc|a|1"}, webhook.Op{Room: "a", Event: []byte("vc-again"), Once: "vc|a|1"}))
	must(q.Append(ctx, leave("a", webhook.SetTracks, webhook.Member("n2", "t2"), "bend", "unpub2")))
	must(q.Append(ctx, leave("a", webhook.SetNodes, webhook.Member("n2", ""), "finished", "")))
	// n1 is lost: its track, then the broadcast and the room end.
	must(q.ForgetNode(ctx, "n1"))
	must(q.ForgetNode(ctx, "n1")) // again: nothing
	must(q.Append(ctx, webhook.Op{Room: "b", Event: []byte("other room")}))
	// Each room's events in order; rooms need not be in any order.
	all := ReceiveAll(t, q)
	slices.SortStableFunc(all, func(x, y webhook.Delivery) int { return strings.Compare(x.Room, y.Room) })
	got := Texts(all)
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
	// A Once key kept for OnceFor only lets the op emit again after it.
	short := webhook.Op{Room: "c", Event: []byte("x"), Once: "short", OnceFor: 50 * time.Millisecond}
	must(q.Append(ctx, short, short))
	time.Sleep(200 * time.Millisecond)
	must(q.Append(ctx, short))
	if got := Texts(ReceiveAll(t, q)); len(got) != 2 || got[0] != "1:x" || got[1] != "2:x" {
		t.Fatalf("Once with OnceFor: got %q; want one event, then one more after OnceFor", got)
	}
}
