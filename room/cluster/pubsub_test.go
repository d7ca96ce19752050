package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/room"
)

// chats returns the texts of the Chat events rec received from sender.
func (r *recorder) chats(sender string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.events {
		if c, ok := ev.(room.Chat); ok && c.ParticipantID == sender {
			out = append(out, c.Text)
		}
	}
	return out
}

func (r *recorder) lastViewerCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.events) - 1; i >= 0; i-- {
		if v, ok := r.events[i].(room.ViewerCount); ok {
			return v.Count
		}
	}
	return -1
}

// fakeNode is a node of the cluster played by the test: it registers,
// writes its part of a room and publishes room events on the channel, as a
// node with a broadcaster does, without a media engine.
type fakeNode struct {
	t     *testing.T
	store Store
	seq   uint64
	part  NodeRoom
	stop  chan struct{}
	done  chan struct{}
}

func newFakeNode(t *testing.T, store Store) *fakeNode {
	f := &fakeNode{t: t, store: store}
	f.beat()
	return f
}

// beat registers the node and writes its part of room "on".
func (f *fakeNode) beat() {
	ctx := context.Background()
	must(f.t, f.store.PutNode(ctx, room.NodeInfo{Region: "fake"}))
	must(f.t, f.store.SyncRoom(ctx, "on", f.part))
}

// heartbeat keeps beating until the test ends or die is called.
func (f *fakeNode) heartbeat() {
	f.stop, f.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(f.done)
		tick := time.NewTicker(clusterHeartbeat)
		defer tick.Stop()
		for {
			select {
			case <-f.stop:
				return
			case <-tick.C:
				f.beat()
			}
		}
	}()
	f.t.Cleanup(f.die)
}

// die stops the heartbeat, as a killed node stops.
func (f *fakeNode) die() {
	if f.stop != nil {
		close(f.stop)
		<-f.done
		f.stop = nil
	}
}

func (f *fakeNode) send(ev wireEvent) {
	f.seq++
	ev.V, ev.Node, ev.Boot, ev.Seq = 1, f.store.NodeID(), "b_fake", f.seq
	b, _ := json.Marshal(ev)
	must(f.t, f.store.Publish(context.Background(), "on", b))
}

// goLive announces a broadcaster with one track, in the store and on the
// channel, and returns its participant id.
func (f *fakeNode) goLive() string {
	p := room.ParticipantRecord{ID: "p_far", Identity: "far", Name: "Far", Publisher: true, Node: f.store.NodeID()}
	tr := room.TrackRecord{ID: "t_far", ParticipantID: p.ID, Kind: "video", Source: "camera", Node: p.Node}
	f.part = NodeRoom{Participants: []room.ParticipantRecord{p}, Tracks: []room.TrackRecord{tr}}
	f.beat()
	f.send(wireEvent{Type: evJoined, Participant: &room.ParticipantRecord{ID: p.ID, Identity: p.Identity, Name: p.Name, Publisher: true}})
	f.send(wireEvent{Type: evPublished, Track: &room.TrackRecord{ID: tr.ID, ParticipantID: p.ID, Kind: tr.Kind, Source: tr.Source}})
	return p.ID
}

func waitLinked(t *testing.T, m *testNode, name string) {
	t.Helper()
	testutil.Eventually(t, "the room is subscribed and read", func() bool {
		r := m.Room(name)
		l := m.cluster.link(r)
		l.mu.Lock()
		subscribed := l.cancel != nil
		l.mu.Unlock()
		return subscribed && r.RemoteReadDone()
	})
}

func (r *recorder) index(match func(room.Event) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, ev := range r.events {
		if match(ev) {
			return i
		}
	}
	return -1
}

// Two nodes of one room: chat, reactions and the room's viewer count cross
// over, in order, exactly once.
func TestCluster_RoomEventsCrossNodes(t *testing.T) {
	srv := testutil.StartRedis(t)
	prefix := clusterPrefix()
	a, _ := newClusterNode(t, srv, prefix, "a", room.Options{Room: config.RoomConfig{EmptyTimeout: time.Hour}})
	b, _ := newClusterNode(t, srv, prefix, "b", room.Options{Room: config.RoomConfig{EmptyTimeout: time.Hour}})
	var onA, onB recorder
	watcher, err := b.Join("live", room.ParticipantSpec{Identity: "watcher", Name: "Watcher", Subscribe: true}, &onB)
	if err != nil {
		t.Fatal(err)
	}
	if err := watcher.Subscribe(nil); err != nil {
		t.Fatal(err)
	}
	waitLinked(t, b, "live")
	host, err := a.Join("live", room.ParticipantSpec{Identity: "host", Name: "Host", Publish: true, Subscribe: true}, &onA)
	if err != nil {
		t.Fatal(err)
	}
	waitLinked(t, a, "live")
	testutil.Eventually(t, "a's host sees the room's viewer on b in the count", func() bool { return onA.lastViewerCount() == 1 })
	if got := a.Room("live").ViewerCount(); got != 1 {
		t.Errorf("a's room counts %d viewers, want 1 (on b)", got)
	}
	var late recorder
	if p, err := a.Join("live", room.ParticipantSpec{Identity: "late"}, &late); err != nil || p.JoinedState().Viewers != 1 {
		t.Errorf("a joiner on a is told of %d viewers (%v), want 1 (on b)", p.JoinedState().Viewers, err)
	}

	want := make([]string, 15)
	for i := range want {
		want[i] = fmt.Sprintf("hello %02d", i)
		if err := host.Chat(want[i]); err != nil {
			t.Fatal(err)
		}
		if err := watcher.Chat("re " + want[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := host.React("👏"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "every chat and the reaction reach the other node", func() bool {
		return len(onB.chats(host.ID())) >= len(want) && len(onA.chats(watcher.ID())) >= len(want) &&
			onB.has(func(ev room.Event) bool {
				r, ok := ev.(room.Reaction)
				return ok && r.ParticipantID == host.ID() && r.Emoji == "👏" && r.Name == "Host"
			})
	})
	time.Sleep(200 * time.Millisecond) // a duplicate would arrive now
	if got := onB.chats(host.ID()); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("b received a's chat out of order or twice: %d messages, first %v", len(got), got[:min(3, len(got))])
	}
	if got := onA.chats(watcher.ID()); len(got) != len(want) || got[0] != "re hello 00" || got[len(want)-1] != "re hello 14" {
		t.Errorf("a received b's chat: %d messages", len(got))
	}
	if got := onA.chats(host.ID()); len(got) != len(want) {
		t.Errorf("a's own chat delivered %d times locally, want %d (the echo must be dropped)", len(got), len(want))
	}
	if n := onB.count(func(ev room.Event) bool { _, ok := ev.(room.Reaction); return ok }); n != 1 {
		t.Errorf("b received the reaction %d times", n)
	}
}

// A broadcaster on another node is announced (participant_joined before its
// track_published), listed for joiners, and when its node dies its track
// ends and it leaves.
func TestCluster_RemoteBroadcasterAndItsNodesDeath(t *testing.T) {
	srv := testutil.StartRedis(t)
	prefix := clusterPrefix()
	b, _ := newClusterNode(t, srv, prefix, "b", room.Options{Room: config.RoomConfig{EmptyTimeout: time.Hour}})
	zs, err := NewRedisStore(redisClient(t, srv), prefix, RedisOptions{NodeID: "z", TTL: clusterTTL})
	if err != nil {
		t.Fatal(err)
	}
	z := newFakeNode(t, zs)
	z.heartbeat()
	var onB recorder
	if _, err := b.Join("on", room.ParticipantSpec{Identity: "watcher"}, &onB); err != nil {
		t.Fatal(err)
	}
	waitLinked(t, b, "on")
	far := z.goLive()
	testutil.Eventually(t, "b's watcher is told of z's broadcaster and its track", func() bool {
		return onB.has(func(ev room.Event) bool { e, ok := ev.(room.TrackPublished); return ok && e.Track.ID == "t_far" })
	})
	joined := onB.index(func(ev room.Event) bool { e, ok := ev.(room.ParticipantJoined); return ok && e.Participant.ID == far })
	published := onB.index(func(ev room.Event) bool { e, ok := ev.(room.TrackPublished); return ok && e.Track.ID == "t_far" })
	if joined < 0 || joined > published {
		t.Errorf("participant_joined at %d, track_published at %d: the broadcaster must come first", joined, published)
	}
	var late recorder
	p, err := b.Join("on", room.ParticipantSpec{Identity: "late"}, &late)
	if err != nil {
		t.Fatal(err)
	}
	if st := p.JoinedState(); len(st.Participants) != 1 || st.Participants[0].ID != far || len(st.Tracks) != 1 {
		t.Errorf("a late joiner on b is told %+v, want z's broadcaster and its track", st)
	}
	if rt := b.Room("on").RemoteTracks(); len(rt) != 1 || rt[0].Node != "z" {
		t.Errorf("remote tracks %+v, want t_far from z", rt)
	}

	z.die()
	testutil.Eventually(t, "b's clients are told z's track ended and its broadcaster left", func() bool {
		return onB.has(func(ev room.Event) bool { e, ok := ev.(room.TrackUnpublished); return ok && e.TrackID == "t_far" }) &&
			onB.has(func(ev room.Event) bool { e, ok := ev.(room.ParticipantLeft); return ok && e.ParticipantID == far })
	})
	if ps, ts := b.Room("on").Snapshot(); len(ps) != 0 || len(ts) != 0 {
		t.Errorf("after z died b still lists %v %v", ps, ts)
	}
}

// A room event delivered twice, or an old one delivered late, is dropped.
func TestCluster_DuplicateEventsAreDropped(t *testing.T) {
	srv := testutil.StartRedis(t)
	prefix := clusterPrefix()
	b, storeB := newClusterNode(t, srv, prefix, "b", room.Options{Room: config.RoomConfig{EmptyTimeout: time.Hour}})
	var onB recorder
	if _, err := b.Join("dup", room.ParticipantSpec{Identity: "watcher"}, &onB); err != nil {
		t.Fatal(err)
	}
	waitLinked(t, b, "dup")
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
	testutil.Eventually(t, "the last event arrives", func() bool { return len(onB.chats("p_z")) >= 3 })
	time.Sleep(100 * time.Millisecond)
	if got := strings.Join(onB.chats("p_z"), ","); got != "one,two,three" {
		t.Fatalf("received %q, want one,two,three", got)
	}
}

// After Redis restarts (empty), a node still knows the other nodes'
// broadcasters (nobody is told they left) and their events flow again.
func TestCluster_RoomEventsResumeAfterRedisRestart(t *testing.T) {
	srv := testutil.StartRedis(t)
	prefix := clusterPrefix()
	b, _ := newClusterNode(t, srv, prefix, "b", room.Options{Room: config.RoomConfig{EmptyTimeout: time.Hour}})
	zs, err := NewRedisStore(redisClient(t, srv), prefix, RedisOptions{NodeID: "z", TTL: clusterTTL})
	if err != nil {
		t.Fatal(err)
	}
	z := newFakeNode(t, zs)
	var onB recorder
	if _, err := b.Join("on", room.ParticipantSpec{Identity: "watcher"}, &onB); err != nil {
		t.Fatal(err)
	}
	waitLinked(t, b, "on")
	far := z.goLive()
	knowsFar := func() bool {
		ps, _ := b.Room("on").Snapshot()
		return len(ps) == 1 && ps[0].ID == far
	}
	testutil.Eventually(t, "b knows z's broadcaster", knowsFar)
	z.heartbeat()

	srv.Restart()
	testutil.Eventually(t, "b and z re-registered", func() bool {
		list, err := b.Nodes(context.Background())
		return err == nil && len(list) == 2 && b.ClusterReady()
	})
	for range forgetAfter + 2 { // past the reconcile beats
		time.Sleep(clusterHeartbeat)
	}
	if !knowsFar() {
		t.Fatal("after the restart b forgot z's broadcaster")
	}
	if onB.has(func(ev room.Event) bool { l, ok := ev.(room.ParticipantLeft); return ok && l.ParticipantID == far }) {
		t.Error("b's watcher was told z's broadcaster left when only Redis restarted")
	}
	testutil.Eventually(t, "z's chat reaches b again", func() bool {
		z.send(wireEvent{Type: evChat, ID: far, Name: "Far", Text: "still here"})
		time.Sleep(50 * time.Millisecond)
		for _, text := range onB.chats(far) {
			if text == "still here" {
				return true
			}
		}
		return false
	})
}

func FuzzParseWireEvent(f *testing.F) {
	for _, ev := range []wireEvent{
		{V: 1, Node: "a", Boot: "b_1", Seq: 1, Type: evChat, ID: "p_1", Name: "A", Text: "hi"},
		{V: 1, Node: "a", Boot: "b_1", Seq: 6, Type: evChat, ID: "p_1", Identity: "user-1", Name: "A", Text: "hi"},
		{V: 1, Node: "a", Boot: "b_1", Seq: 7, Type: evReaction, ID: "p_1", Identity: strings.Repeat("😀", 128), Name: "A", Emoji: "👏"},
		{V: 1, Node: "a", Boot: "b_1", Seq: 8, Type: evReaction, ID: "p_1", Identity: strings.Repeat("x", maxWireField+1), Emoji: "👏"},
		{V: 1, Node: "a", Boot: "b_1", Seq: 2, Type: evJoined, Participant: &room.ParticipantRecord{ID: "p_1", Publisher: true}},
		{V: 1, Node: "a", Boot: "b_1", Seq: 3, Type: evPublished, Track: &room.TrackRecord{ID: "t_1", ParticipantID: "p_1", Kind: "video", Siblings: 2}},
		{V: 1, Node: "a", Boot: "b_1", Seq: 4, Type: evViewers, Viewers: 12},
		{V: 1, Node: "a", Boot: "b_1", Seq: 5, Type: evNodeGone},
	} {
		b, _ := json.Marshal(ev)
		f.Add(b)
	}
	f.Add([]byte(`{"v":1,"type":"chat"}`))
	f.Add([]byte(`{"v":1,"node":"a","boot":"b","seq":1,"type":"track_published","track":{"id":"t","participant_id":"p","siblings":-1}}`))
	f.Add([]byte(`{"v":1,"node":"a","boot":"b","seq":1,"type":"track_published","track":{"id":"t","participant_id":"p","siblings":65}}`))
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
			if ev.Track.Siblings < 0 || ev.Track.Siblings > room.MaxSiblings {
				t.Fatalf("accepted %d sibling tracks", ev.Track.Siblings)
			}
		}
		if ev.Seq == 0 || ev.Node == "" || len(ev.Text) > maxWireText || len(ev.Identity) > maxWireField || !utf8.ValidString(ev.Identity) {
			t.Fatalf("accepted %+v", ev)
		}
	})
}
