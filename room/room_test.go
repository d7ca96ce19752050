package room

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/sfu"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) Event(ev Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *recorder) has(match func(Event) bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.events {
		if match(ev) {
			return true
		}
	}
	return false
}

// newTestManager starts a Manager that serves alone: no cluster.
func newTestManager(t *testing.T, opt Options) *Manager {
	t.Helper()
	e, err := sfu.NewEngine(testutil.SFUConfig(true), nil)
	if err != nil {
		t.Fatal(err)
	}
	opt.NodeID = "n1"
	m := NewManager(e, opt)
	t.Cleanup(func() {
		m.Close()
		e.Close()
	})
	return m
}

// A node alone: joins and leaves, the viewer count, and the empty room's
// removal. (What a cluster records of the same is
// TestCluster_RecordsParticipantsAndForgetsEmptyRoom, in room/cluster.)
func TestJoinLeave_EventsAndEmptyRoomRemoval(t *testing.T) {
	m := newTestManager(t, Options{})
	var a, b recorder
	pa, err := m.Join("r", ParticipantSpec{Identity: "alice", Publish: true}, &a)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := m.Join("r", ParticipantSpec{Identity: "bob", Subscribe: true}, &b)
	if err != nil {
		t.Fatal(err)
	}
	if err := pb.Subscribe(nil); err != nil {
		t.Fatal(err)
	}
	// Nothing is published: bob waits for the broadcast, and counts.
	if got := m.Room("r").ViewerCount(); got != 1 {
		t.Fatalf("viewer count %d", got)
	}
	pb.Leave()
	pb.Leave() // twice is harmless
	testutil.Eventually(t, "viewer count event 0", func() bool {
		return a.has(func(ev Event) bool { v, ok := ev.(ViewerCount); return ok && v.Count == 0 })
	})
	pa.Leave()
	testutil.Eventually(t, "empty room removed", func() bool { return m.Room("r") == nil })
}

// connected tells the room that p's subscriber connection came up, as the
// media plane does (sfu.SubscriberEvents.OnConnected): the room's unit
// tests have no client at the other end. (End to end, with real clients:
// internal/node's viewer count tests.)
func connected(p *Participant) {
	p.mu.Lock()
	sub := p.subscriber
	p.mu.Unlock()
	p.subscriberConnected(sub)
}

func TestGrantsAndLimits(t *testing.T) {
	m := newTestManager(t, Options{Limits: config.LimitsConfig{ParticipantsPerRoom: 1, MaxSDPBytes: 1 << 16, MaxMediaSections: 4}})
	var r recorder
	p, err := m.Join("g", ParticipantSpec{Identity: "viewer", Subscribe: true}, &r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Join("g", ParticipantSpec{Identity: "x"}, &r); !errors.Is(err, ErrRoomFull) {
		t.Fatalf("second join: %v", err)
	}
	if _, err := p.Publish(context.Background(), "v=0", nil, false); !errors.Is(err, ErrForbidden) {
		t.Fatalf("publish without grant: %v", err)
	}
	if err := p.Subscribe([]string{"t_missing"}); !errors.Is(err, ErrUnknownTrack) {
		t.Fatalf("unknown track: %v", err)
	}
	if err := p.Answer("v=0"); !errors.Is(err, ErrNoSubscription) {
		t.Fatalf("answer without subscription: %v", err)
	}
	p.Leave()
	if err := p.Subscribe(nil); !errors.Is(err, ErrLeft) {
		t.Fatalf("subscribe after leave: %v", err)
	}
}

func TestDrain_RefusesJoinsAndClosesEveryone(t *testing.T) {
	m := newTestManager(t, Options{})
	var r recorder
	if _, err := m.Join("d", ParticipantSpec{Identity: "a"}, &r); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if !r.has(func(ev Event) bool { c, ok := ev.(Closed); return ok && errors.Is(c.Reason, ErrDraining) }) {
		t.Fatal("participant not told of the drain")
	}
	if _, err := m.Join("d", ParticipantSpec{Identity: "b"}, &r); !errors.Is(err, ErrDraining) {
		t.Fatalf("join while draining: %v", err)
	}
	if s := m.Stats(); s.Participants != 0 {
		t.Fatalf("participants left: %+v", s)
	}
}

func TestPickVideo(t *testing.T) {
	ts := map[string]*published{
		"t_b": {info: TrackInfo{ID: "t_b", Kind: "video", Source: "screen", Name: "Slides"}},
		"t_c": {info: TrackInfo{ID: "t_c", Kind: "video", Source: "camera", Name: "Front"}},
		"t_a": {info: TrackInfo{ID: "t_a", Kind: "audio", Source: "microphone"}},
	}
	if got := pickVideo(ts, ""); got.info.ID != "t_c" {
		t.Fatalf("main camera: %s", got.info.ID)
	}
	if got := pickVideo(ts, "slides"); got.info.ID != "t_b" {
		t.Fatalf("by name: %s", got.info.ID)
	}
	if got := pickVideo(ts, "t_b"); got.info.ID != "t_b" {
		t.Fatalf("by id: %s", got.info.ID)
	}
}

func TestHiddenParticipant_IsNotAnnounced(t *testing.T) {
	m := newTestManager(t, Options{})
	var host, dash recorder
	if _, err := m.Join("h", ParticipantSpec{Identity: "host", Publish: true}, &host); err != nil {
		t.Fatal(err)
	}
	d, err := m.Join("h", ParticipantSpec{Identity: "host", Hidden: true}, &dash)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Subscribe(nil); err == nil {
		t.Fatal("a hidden participant without the subscribe grant subscribed")
	}
	ps, _ := m.Room("h").Snapshot()
	if len(ps) != 0 {
		t.Fatalf("snapshot lists %v", ps)
	}
	d.Leave()
	if host.has(func(ev Event) bool { _, j := ev.(ParticipantJoined); _, l := ev.(ParticipantLeft); return j || l }) {
		t.Fatal("hidden participant announced")
	}
}

func (r *recorder) count(match func(Event) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, ev := range r.events {
		if match(ev) {
			n++
		}
	}
	return n
}

func isViewerCount(ev Event) bool { _, ok := ev.(ViewerCount); return ok }

func isAnnouncement(ev Event) bool {
	_, j := ev.(ParticipantJoined)
	_, l := ev.(ParticipantLeft)
	return j || l
}

// Viewers are an audience: nobody is told of each one coming or going, the
// room gets a count, coalesced to at most one event a second, and a joiner's
// snapshot lists no viewers.
func TestViewers_AreCountedNotAnnounced(t *testing.T) {
	m := newTestManager(t, Options{})
	var host recorder
	if _, err := m.Join("aud", ParticipantSpec{Identity: "host", Publish: true, Subscribe: true}, &host); err != nil {
		t.Fatal(err)
	}
	const viewers = 12
	start := time.Now()
	var ps []*Participant
	for i := range viewers {
		var r recorder
		p, err := m.Join("aud", ParticipantSpec{Identity: fmt.Sprintf("v%d", i), Subscribe: true}, &r)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Subscribe(nil); err != nil { // a real subscriber connection
			t.Fatal(err)
		}
		connected(p)
		ps = append(ps, p)
	}
	testutil.Eventually(t, "a viewer count of 12", func() bool {
		return host.has(func(ev Event) bool { v, ok := ev.(ViewerCount); return ok && v.Count == viewers })
	})
	if got := m.Room("aud").ViewerCount(); got != viewers {
		t.Fatalf("ViewerCount %d, want %d", got, viewers)
	}
	var late recorder
	lp, err := m.Join("aud", ParticipantSpec{Identity: "late", Subscribe: true}, &late)
	if err != nil {
		t.Fatal(err)
	}
	if st := lp.JoinedState(); len(st.Participants) != 0 || st.Viewers != viewers {
		t.Fatalf("the late joiner's state lists %d participants (nobody has published) and %d viewers (want %d)", len(st.Participants), st.Viewers, viewers)
	}
	lp.Leave()
	for _, p := range ps {
		p.Leave()
	}
	testutil.Eventually(t, "a viewer count of 0", func() bool {
		return host.has(func(ev Event) bool { v, ok := ev.(ViewerCount); return ok && v.Count == 0 })
	})
	elapsed := time.Since(start)
	if n := host.count(isAnnouncement); n != 0 {
		t.Fatalf("the host was told of %d viewers coming or going", n)
	}
	// At most one count per interval (plus the one sent at once), and never
	// the same count twice in a row.
	counts := host.count(isViewerCount)
	if most := 2 + int(elapsed/viewerCountInterval); counts > most {
		t.Fatalf("%d viewer count events in %s; at most %d allowed", counts, elapsed, most)
	}
	host.mu.Lock()
	prev := -1
	for _, ev := range host.events {
		if v, ok := ev.(ViewerCount); ok {
			if v.Count == prev {
				t.Errorf("viewer count %d sent twice in a row", v.Count)
			}
			prev = v.Count
		}
	}
	host.mu.Unlock()
}

// Chat and reactions share a per-room budget: once the room is over it,
// the sender is told (ErrRoomRateLimited) and nobody receives the message.
func TestRoomMessageRate(t *testing.T) {
	// One message a second after a burst of three: the five below are sent
	// within microseconds of each other, so the budget does not refill
	// between them.
	m := newTestManager(t, Options{Limits: config.LimitsConfig{RoomMessagesPerSecond: 1, RoomMessagesBurst: 3}})
	var a, b recorder
	pa, err := m.Join("chatty", ParticipantSpec{Identity: "a", Name: "Ann"}, &a)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := m.Join("chatty", ParticipantSpec{Identity: "b", Name: "Bo"}, &b)
	if err != nil {
		t.Fatal(err)
	}
	if err := pa.Chat("one"); err != nil {
		t.Fatal(err)
	}
	if err := pb.React("🎉"); err != nil {
		t.Fatal(err)
	}
	if err := pb.Chat("three"); err != nil {
		t.Fatal(err)
	}
	// The budget is the room's: a's message is refused after b used it up.
	if err := pa.Chat("four"); !errors.Is(err, ErrRoomRateLimited) {
		t.Fatalf("fourth message: %v, want ErrRoomRateLimited", err)
	}
	if err := pa.React("👍"); !errors.Is(err, ErrRoomRateLimited) {
		t.Fatalf("reaction over the budget: %v, want ErrRoomRateLimited", err)
	}
	for _, r := range []*recorder{&a, &b} {
		if n := r.count(func(ev Event) bool { _, c := ev.(Chat); _, x := ev.(Reaction); return c || x }); n != 3 {
			t.Fatalf("a participant received %d messages, want 3", n)
		}
	}
	if !a.has(func(ev Event) bool {
		x, ok := ev.(Reaction)
		return ok && x.Emoji == "🎉" && x.Name == "Bo" && x.ParticipantID == pb.ID()
	}) {
		t.Fatal("the reaction did not reach the room with its sender")
	}
	// Another room has its own budget.
	var c recorder
	pc, err := m.Join("quiet", ParticipantSpec{Identity: "c"}, &c)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Chat("hello"); err != nil {
		t.Fatalf("another room's chat: %v", err)
	}
}

// Fan-out does not hold the room lock: a sink that is slow to take its
// events (here: blocked until released) does not stop others joining,
// leaving or reading the room meanwhile.
func TestFanOut_DoesNotHoldTheRoomLock(t *testing.T) {
	m := newTestManager(t, Options{})
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	slow := sinkFunc(func(ev Event) {
		if _, ok := ev.(Chat); ok {
			entered <- struct{}{}
			<-release
		}
	})
	ps, err := m.Join("lock", ParticipantSpec{Identity: "slow"}, slow)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ps.Chat("hi") }()
	<-entered // the chat is being delivered
	others := make(chan error, 1)
	go func() {
		var r recorder
		p, err := m.Join("lock", ParticipantSpec{Identity: "other", Subscribe: true}, &r)
		if err == nil {
			_ = m.Room("lock").ViewerCount()
			m.Room("lock").Snapshot()
			p.Leave()
		}
		others <- err
	}()
	select {
	case err := <-others:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second): // a liveness bound, not a timing
		close(release)
		t.Fatal("joining, reading and leaving the room waited for a chat's delivery")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

type sinkFunc func(Event)

func (f sinkFunc) Event(ev Event) { f(ev) }
