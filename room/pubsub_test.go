package room

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// chats returns the texts of the Chat events rec received from sender.
func (r *recorder) chats(sender string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.events {
		if c, ok := ev.(Chat); ok && c.ParticipantID == sender {
			out = append(out, c.Text)
		}
	}
	return out
}

func (r *recorder) lastViewerCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.events) - 1; i >= 0; i-- {
		if v, ok := r.events[i].(ViewerCount); ok {
			return v.Count
		}
	}
	return -1
}

// Two nodes of one room: publishers, chat and the room's viewer count
// cross over, in order, exactly once.
func TestCluster_RoomEventsCrossNodes(t *testing.T) {
	srv := startRedis(t)
	prefix := clusterPrefix()
	a, _ := newClusterNode(t, srv, prefix, "a", Options{EmptyTimeout: time.Hour})
	b, _ := newClusterNode(t, srv, prefix, "b", Options{EmptyTimeout: time.Hour})
	var onA, onB recorder
	watcher, err := b.Join("live", ParticipantSpec{Identity: "watcher", Name: "Watcher", Subscribe: true}, &onB)
	if err != nil {
		t.Fatal(err)
	}
	if err := watcher.Subscribe(nil); err != nil {
		t.Fatal(err)
	}
	// b's subscription is set up off the join path; wait until the room
	// is linked before a publishes.
	pollFor(t, "b is subscribed to the room", func() bool {
		l := b.link(b.Room("live"))
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.cancel != nil
	})
	host, err := a.Join("live", ParticipantSpec{Identity: "host", Name: "Host", Publish: true, Subscribe: true}, &onA)
	if err != nil {
		t.Fatal(err)
	}
	pollFor(t, "b's watcher hears that a's publisher joined", func() bool {
		return onB.has(func(ev Event) bool {
			j, ok := ev.(ParticipantJoined)
			return ok && j.Participant.ID == host.ID() && j.Participant.Identity == "host" && j.Participant.Publisher
		})
	})
	ps, _ := b.Room("live").Snapshot()
	if len(ps) != 2 {
		t.Errorf("b's snapshot lists %d participants, want the watcher and a's publisher: %+v", len(ps), ps)
	}
	pollFor(t, "a's publisher sees the room's viewer on b in the count", func() bool { return onA.lastViewerCount() == 1 })
	if got := a.Room("live").ViewerCount(); got != 1 {
		t.Errorf("a's room counts %d viewers, want 1 (on b)", got)
	}

	want := make([]string, 50)
	for i := range want {
		want[i] = fmt.Sprintf("hello %02d", i)
		host.Chat(want[i])
		watcher.Chat("re " + want[i])
	}
	pollFor(t, "every chat reaches the other node", func() bool {
		return len(onB.chats(host.ID())) >= len(want) && len(onA.chats(watcher.ID())) >= len(want)
	})
	time.Sleep(200 * time.Millisecond) // a duplicate would arrive now
	if got := onB.chats(host.ID()); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("b received a's chat out of order or twice: %d messages, first %v", len(got), got[:min(3, len(got))])
	}
	if got := onA.chats(watcher.ID()); len(got) != len(want) || got[0] != "re hello 00" || got[49] != "re hello 49" {
		t.Errorf("a received b's chat: %d messages", len(got))
	}
	if got := onA.chats(host.ID()); len(got) != len(want) {
		t.Errorf("a's own chat delivered %d times locally, want %d (the echo must be dropped)", len(got), len(want))
	}

	host.Leave()
	pollFor(t, "b's watcher hears that a's publisher left", func() bool {
		return onB.has(func(ev Event) bool { l, ok := ev.(ParticipantLeft); return ok && l.ParticipantID == host.ID() })
	})
	if ps, _ := b.Room("live").Snapshot(); len(ps) != 1 {
		t.Errorf("b's snapshot after the publisher left: %+v", ps)
	}
}

// A room event delivered twice, or an old one delivered late, is dropped.
func TestCluster_DuplicateEventsAreDropped(t *testing.T) {
	srv := startRedis(t)
	prefix := clusterPrefix()
	b, storeB := newClusterNode(t, srv, prefix, "b", Options{EmptyTimeout: time.Hour})
	var onB recorder
	if _, err := b.Join("dup", ParticipantSpec{Identity: "watcher"}, &onB); err != nil {
		t.Fatal(err)
	}
	pollFor(t, "b is subscribed", func() bool {
		l := b.link(b.Room("dup"))
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.cancel != nil
	})
	send := func(seq uint64, text string) {
		ev, _ := json.Marshal(wireEvent{V: 1, Node: "z", Boot: "b_1", Seq: seq, Type: evChat, ID: "p_z", Name: "Z", Text: text})
		must(t, storeB.Publish(context.Background(), "dup", ev))
	}
	send(1, "one")
	send(1, "one again")
	send(2, "two")
	send(1, "one late")
	must(t, storeB.Publish(context.Background(), "dup", []byte(`{"v":1,"node":"z"`))) // garbage is dropped
	send(3, "three")
	pollFor(t, "the last event arrives", func() bool { return len(onB.chats("p_z")) >= 3 })
	time.Sleep(100 * time.Millisecond)
	if got := strings.Join(onB.chats("p_z"), ","); got != "one,two,three" {
		t.Fatalf("received %q, want one,two,three", got)
	}
}

// When a node leaves the registry (dead), the other nodes' clients are told
// its publishers left and its viewers no longer count.
func TestCluster_DeadNodesPublishersLeave(t *testing.T) {
	srv := startRedis(t)
	prefix := clusterPrefix()
	a, _ := newClusterNode(t, srv, prefix, "a", Options{EmptyTimeout: time.Hour})
	b, _ := newClusterNode(t, srv, prefix, "b", Options{EmptyTimeout: time.Hour})
	var onA, onB recorder
	if _, err := b.Join("gone", ParticipantSpec{Identity: "watcher"}, &onB); err != nil {
		t.Fatal(err)
	}
	host, err := a.Join("gone", ParticipantSpec{Identity: "host", Publish: true}, &onA)
	if err != nil {
		t.Fatal(err)
	}
	pollFor(t, "b knows a's publisher", func() bool {
		ps, _ := b.Room("gone").Snapshot()
		return len(ps) == 2
	})
	a.haltHeartbeat()
	pollFor(t, "b's watcher is told a's publisher left", func() bool {
		return onB.has(func(ev Event) bool { l, ok := ev.(ParticipantLeft); return ok && l.ParticipantID == host.ID() })
	})
}

func FuzzParseWireEvent(f *testing.F) {
	for _, ev := range []wireEvent{
		{V: 1, Node: "a", Boot: "b_1", Seq: 1, Type: evChat, ID: "p_1", Name: "A", Text: "hi"},
		{V: 1, Node: "a", Boot: "b_1", Seq: 2, Type: evJoined, Participant: &wireParticipant{ID: "p_1", Publisher: true}},
		{V: 1, Node: "a", Boot: "b_1", Seq: 3, Type: evPublished, Track: &wireTrack{ID: "t_1", ParticipantID: "p_1", Kind: "video"}},
		{V: 1, Node: "a", Boot: "b_1", Seq: 4, Type: evViewers, Viewers: 12},
	} {
		b, _ := json.Marshal(ev)
		f.Add(b)
	}
	f.Add([]byte(`{"v":1,"type":"chat"}`))
	f.Add([]byte(`{"v":1,"node":"a","boot":"b","seq":1,"type":"participant_joined","participant":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := parseWireEvent(b)
		if err != nil {
			return
		}
		// Whatever is accepted is complete for its type.
		switch ev.Type {
		case evJoined:
			if ev.Participant == nil {
				t.Fatal("participant_joined without a participant accepted")
			}
		case evPublished:
			if ev.Track == nil {
				t.Fatal("track_published without a track accepted")
			}
		}
		if ev.Seq == 0 || ev.Node == "" || len(ev.Text) > maxWireText {
			t.Fatalf("accepted %+v", ev)
		}
	})
}

// After Redis restarts (empty), the nodes of a room still know each other's
// publishers and their events flow again.
func TestCluster_RoomEventsResumeAfterRedisRestart(t *testing.T) {
	srv := startRedis(t)
	prefix := clusterPrefix()
	a, _ := newClusterNode(t, srv, prefix, "a", Options{EmptyTimeout: time.Hour})
	b, _ := newClusterNode(t, srv, prefix, "b", Options{EmptyTimeout: time.Hour})
	var onA, onB recorder
	if _, err := b.Join("on", ParticipantSpec{Identity: "watcher"}, &onB); err != nil {
		t.Fatal(err)
	}
	host, err := a.Join("on", ParticipantSpec{Identity: "host", Publish: true}, &onA)
	if err != nil {
		t.Fatal(err)
	}
	knowsHost := func() bool {
		ps, _ := b.Room("on").Snapshot()
		for _, p := range ps {
			if p.ID == host.ID() {
				return true
			}
		}
		return false
	}
	pollFor(t, "b knows a's publisher", knowsHost)

	srv.restart()
	pollFor(t, "both nodes re-registered", func() bool {
		list, err := b.Nodes(context.Background())
		return err == nil && len(list) == 2 && a.ClusterReady() && b.ClusterReady()
	})
	// Past the reconcile beats, b must still list a's publisher.
	for range forgetAfter + 2 {
		time.Sleep(clusterHeartbeat)
	}
	if !knowsHost() {
		t.Fatal("after the restart b forgot a's publisher")
	}
	if onB.has(func(ev Event) bool { l, ok := ev.(ParticipantLeft); return ok && l.ParticipantID == host.ID() }) {
		t.Error("b's watcher was told a's publisher left when only Redis restarted")
	}
	pollFor(t, "a's chat reaches b again", func() bool {
		host.Chat("still here")
		time.Sleep(50 * time.Millisecond)
		for _, text := range onB.chats(host.ID()) {
			if text == "still here" {
				return true
			}
		}
		return false
	})
}
