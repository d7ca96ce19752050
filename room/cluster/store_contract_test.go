package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/room"
)

// storeFactory makes node id's handle on one shared state whose leases
// last ttl.
type storeFactory func(t *testing.T, ttl time.Duration) func(id string) Store

// The Store contract: every test runs against the memory store and against a
// real redis-server, so both behave the same for the Manager.
var storeContract = []struct {
	name string
	run  func(t *testing.T, nodes func(id string) Store, ttl time.Duration)
}{
	{"two nodes see each other's participants, tracks and viewers", contractTwoNodes},
	{"a node deletes only its own part", contractDeleteOwnPart},
	{"sync replaces the node's part", contractSync},
	{"a node that stops renewing vanishes", contractLeaseExpiry},
	{"renewed leases live on and lost ones are reported", contractRenew},
	{"origin claims are atomic and held by one node", contractOrigin},
	{"the registry lists live nodes", contractRegistry},
	{"room events reach every subscriber in order", contractPubSub},
	{"a cancelled context is refused", contractCancelled},
}

func runStoreContract(t *testing.T, factory storeFactory) {
	for _, tt := range storeContract {
		t.Run(tt.name, func(t *testing.T) {
			// Long enough that a loaded machine does not expire a lease between a
			// renewal and the check that follows it; the expiry tests poll.
			ttl := 1500 * time.Millisecond
			tt.run(t, factory(t, ttl), ttl)
		})
	}
}

func TestStoreContract_Memory(t *testing.T) {
	runStoreContract(t, func(t *testing.T, ttl time.Duration) func(string) Store {
		shared := NewMemoryStore()
		return func(id string) Store { return shared.Node(id, ttl) }
	})
}

func TestStoreContract_Redis(t *testing.T) {
	srv := testutil.StartRedis(t)
	runStoreContract(t, func(t *testing.T, ttl time.Duration) func(string) Store {
		return redisNodes(t, srv, ttl)
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func contractTwoNodes(t *testing.T, nodes func(string) Store, _ time.Duration) {
	ctx := context.Background()
	a, b := nodes("a"), nodes("b")
	if _, err := a.Room(ctx, "r"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty room: %v", err)
	}
	must(t, a.PutParticipant(ctx, "r", room.ParticipantRecord{ID: "p_a", Identity: "alice", Publisher: true, Node: "a"}))
	must(t, a.PutTrack(ctx, "r", room.TrackRecord{ID: "t_a", ParticipantID: "p_a", Kind: "video", Node: "a"}))
	must(t, b.PutParticipant(ctx, "r", room.ParticipantRecord{ID: "p_b1", Identity: "bob", Node: "b"}))
	must(t, b.PutParticipant(ctx, "r", room.ParticipantRecord{ID: "p_b2", Identity: "carol", Node: "b"}))
	must(t, b.SetViewers(ctx, "r", 2))
	must(t, a.SetViewers(ctx, "r", 0))
	for _, s := range []Store{a, b} {
		st, err := s.Room(ctx, "r")
		must(t, err)
		ids := []string{}
		for _, p := range st.Participants {
			ids = append(ids, p.ID+"@"+p.Node)
		}
		if !slices.Equal(ids, []string{"p_a@a", "p_b1@b", "p_b2@b"}) {
			t.Errorf("%s sees participants %v", s.NodeID(), ids)
		}
		if len(st.Tracks) != 1 || st.Tracks[0].ID != "t_a" || st.Tracks[0].Node != "a" {
			t.Errorf("%s sees tracks %+v", s.NodeID(), st.Tracks)
		}
		if st.Viewers["b"] != 2 || st.Viewers["a"] != 0 || totalViewers(st) != 2 {
			t.Errorf("%s sees viewers %v", s.NodeID(), st.Viewers)
		}
		c, err := s.Counts(ctx, "r")
		must(t, err)
		if c.Participants["a"] != 1 || c.Participants["b"] != 2 || c.ParticipantsExcept("a") != 2 || c.Viewers["b"] != 2 {
			t.Errorf("%s counts %+v", s.NodeID(), c)
		}
	}
	rooms, err := b.Rooms(ctx)
	must(t, err)
	if !slices.Equal(rooms, []string{"r"}) {
		t.Errorf("rooms %v", rooms)
	}
	must(t, b.DeleteParticipant(ctx, "r", "p_b2"))
	must(t, a.DeleteTrack(ctx, "r", "t_a"))
	st, err := a.Room(ctx, "r")
	must(t, err)
	if len(st.Participants) != 2 || len(st.Tracks) != 0 {
		t.Errorf("after deletes: %+v", st)
	}
}

func contractDeleteOwnPart(t *testing.T, nodes func(string) Store, _ time.Duration) {
	ctx := context.Background()
	a, b := nodes("a"), nodes("b")
	must(t, a.PutParticipant(ctx, "r", room.ParticipantRecord{ID: "p_a", Node: "a"}))
	must(t, b.PutParticipant(ctx, "r", room.ParticipantRecord{ID: "p_b", Node: "b"}))
	must(t, a.DeleteRoom(ctx, "r"))
	st, err := b.Room(ctx, "r")
	must(t, err)
	if len(st.Participants) != 1 || st.Participants[0].ID != "p_b" {
		t.Fatalf("after a left the room: %+v", st.Participants)
	}
	must(t, b.DeleteRoom(ctx, "r"))
	if _, err := a.Room(ctx, "r"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("room both left: %v", err)
	}
	testutil.Eventually(t, "the rooms index forgets the room", func() bool {
		rooms, err := a.Rooms(ctx)
		return err == nil && len(rooms) == 0
	})
}

func contractSync(t *testing.T, nodes func(string) Store, _ time.Duration) {
	ctx := context.Background()
	a, b := nodes("a"), nodes("b")
	must(t, a.PutParticipant(ctx, "r", room.ParticipantRecord{ID: "ghost", Node: "a"}))
	must(t, b.PutParticipant(ctx, "r", room.ParticipantRecord{ID: "p_b", Node: "b"}))
	must(t, a.SyncRoom(ctx, "r", NodeRoom{
		Participants: []room.ParticipantRecord{{ID: "p_a", Node: "a"}},
		Tracks:       []room.TrackRecord{{ID: "t_a", Node: "a"}},
		Viewers:      5,
	}))
	st, err := b.Room(ctx, "r")
	must(t, err)
	if len(st.Participants) != 2 || st.Participants[0].ID != "p_a" || st.Participants[1].ID != "p_b" ||
		len(st.Tracks) != 1 || st.Viewers["a"] != 5 {
		t.Fatalf("after sync: %+v", st)
	}
}

func contractLeaseExpiry(t *testing.T, nodes func(string) Store, _ time.Duration) {
	ctx := context.Background()
	a, b := nodes("a"), nodes("b")
	must(t, a.PutParticipant(ctx, "r", room.ParticipantRecord{ID: "p_a", Node: "a"}))
	must(t, a.PutTrack(ctx, "r", room.TrackRecord{ID: "t_a", Node: "a"}))
	must(t, a.SetViewers(ctx, "r", 3))
	must(t, a.PutNode(ctx, room.NodeInfo{Region: "eu"}))
	holder, err := a.ClaimOrigin(ctx, "r", "t_a")
	if err != nil || holder != "a" {
		t.Fatalf("claim: %q %v", holder, err)
	}
	// a stops renewing (it died): everything it wrote goes.
	testutil.Eventually(t, "a's room entries expire", func() bool {
		_, err := b.Room(ctx, "r")
		return errors.Is(err, ErrNotFound)
	})
	testutil.Eventually(t, "a leaves the registry", func() bool {
		n, err := b.Nodes(ctx)
		return err == nil && len(n) == 0
	})
	testutil.Eventually(t, "a's origin claim expires", func() bool {
		_, err := b.Origin(ctx, "r", "t_a")
		return errors.Is(err, ErrNotFound)
	})
	c, err := b.Counts(ctx, "r")
	must(t, err)
	if len(c.Participants) != 0 {
		t.Fatalf("counts of a dead node's room: %+v", c)
	}
	if holder, err := b.ClaimOrigin(ctx, "r", "t_a"); err != nil || holder != "b" {
		t.Fatalf("claim after expiry: %q %v", holder, err)
	}
}

func contractRenew(t *testing.T, nodes func(string) Store, ttl time.Duration) {
	ctx := context.Background()
	a, b := nodes("a"), nodes("b")
	must(t, a.PutParticipant(ctx, "kept", room.ParticipantRecord{ID: "p_a", Node: "a"}))
	must(t, a.PutParticipant(ctx, "dropped", room.ParticipantRecord{ID: "p_d", Node: "a"}))
	_, err := a.ClaimOrigin(ctx, "kept", "t_a")
	must(t, err)
	// Renew "kept" for three leases; "dropped" is not renewed.
	leases := Leases{Rooms: []string{"kept"}, Origins: []OriginKey{{"kept", "t_a"}}}
	for end := time.Now().Add(3 * ttl); time.Now().Before(end); time.Sleep(ttl / 4) {
		ren, err := a.Renew(ctx, leases)
		must(t, err)
		if len(ren.Missing)+len(ren.Lost) != 0 {
			t.Fatalf("renewing live leases reported %+v", ren)
		}
	}
	if _, err := b.Room(ctx, "kept"); err != nil {
		t.Fatalf("renewed room: %v", err)
	}
	if h, err := b.Origin(ctx, "kept", "t_a"); err != nil || h != "a" {
		t.Fatalf("renewed origin: %q %v", h, err)
	}
	testutil.Eventually(t, "the unrenewed room expires", func() bool {
		_, err := b.Room(ctx, "dropped")
		return errors.Is(err, ErrNotFound)
	})
	// Lost leases are reported, whoever took over.
	ren, err := a.Renew(ctx, Leases{Rooms: []string{"dropped"}})
	must(t, err)
	if !slices.Equal(ren.Missing, []string{"dropped"}) {
		t.Fatalf("renew of an expired room: %+v", ren)
	}
	must(t, a.ReleaseOrigin(ctx, "kept", "t_a"))
	if h, _ := b.ClaimOrigin(ctx, "kept", "t_a"); h != "b" {
		t.Fatalf("claim after release: %q", h)
	}
	ren, err = a.Renew(ctx, leases)
	must(t, err)
	if len(ren.Lost) != 1 || ren.Lost[0] != (OriginKey{"kept", "t_a"}) {
		t.Fatalf("renew of an origin b holds: %+v", ren)
	}
	if h, _ := b.Origin(ctx, "kept", "t_a"); h != "b" {
		t.Fatalf("a's renew took b's claim: %q", h)
	}
}

func contractOrigin(t *testing.T, nodes func(string) Store, _ time.Duration) {
	ctx := context.Background()
	handles := make([]Store, 5)
	for i := range handles {
		handles[i] = nodes(fmt.Sprintf("n%d", i))
	}
	// Everyone claims at once: one wins, and all agree who.
	holders := make([]string, 40)
	var wg sync.WaitGroup
	for i := range holders {
		wg.Go(func() {
			h, err := handles[i%len(handles)].ClaimOrigin(ctx, "r", "t")
			if err != nil {
				t.Error(err)
			}
			holders[i] = h
		})
	}
	wg.Wait()
	for _, h := range holders {
		if h != holders[0] || h == "" {
			t.Fatalf("claims disagree: %v", holders)
		}
	}
	var winner, other Store
	for _, h := range handles {
		if h.NodeID() == holders[0] {
			winner = h
		} else {
			other = h
		}
	}
	must(t, other.ReleaseOrigin(ctx, "r", "t")) // not its claim: no effect
	if h, err := other.Origin(ctx, "r", "t"); err != nil || h != winner.NodeID() {
		t.Fatalf("another node released the claim: %q %v", h, err)
	}
	must(t, winner.ReleaseOrigin(ctx, "r", "t"))
	if _, err := other.Origin(ctx, "r", "t"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("released claim: %v", err)
	}
}

func contractRegistry(t *testing.T, nodes func(string) Store, ttl time.Duration) {
	ctx := context.Background()
	a, b := nodes("a"), nodes("b")
	must(t, a.PutNode(ctx, room.NodeInfo{Region: "eu", PublicURL: "https://a.example", RelayAddress: "10.0.0.1:7883", Viewers: 7, CPU: 0.25}))
	must(t, b.PutNode(ctx, room.NodeInfo{Region: "in", PublicURL: "https://b.example"}))
	list, err := a.Nodes(ctx)
	must(t, err)
	if len(list) != 2 || list[0].ID != "a" || list[0].Region != "eu" || list[0].RelayAddress != "10.0.0.1:7883" ||
		list[0].Viewers != 7 || list[0].CPU != 0.25 || list[1].ID != "b" || list[1].Region != "in" {
		t.Fatalf("nodes %+v", list)
	}
	must(t, b.DeleteNode(ctx))
	// a keeps heartbeating; b left.
	for end := time.Now().Add(2 * ttl); time.Now().Before(end); time.Sleep(ttl / 4) {
		must(t, a.PutNode(ctx, room.NodeInfo{Region: "eu"}))
	}
	list, err = b.Nodes(ctx)
	must(t, err)
	if len(list) != 1 || list[0].ID != "a" {
		t.Fatalf("nodes after b left: %+v", list)
	}
}

func contractPubSub(t *testing.T, nodes func(string) Store, _ time.Duration) {
	ctx := context.Background()
	a, b := nodes("a"), nodes("b")
	var mu sync.Mutex
	got := map[string][]string{}
	for _, s := range []Store{a, b} {
		cancel, err := s.Subscribe("r", func(p []byte) {
			mu.Lock()
			got[s.NodeID()] = append(got[s.NodeID()], string(p))
			mu.Unlock()
		})
		must(t, err)
		t.Cleanup(cancel)
	}
	other, err := b.Subscribe("other", func([]byte) { t.Error("a message for room r reached room other") })
	must(t, err)
	defer other()
	want := make([]string, 200)
	for i := range want {
		want[i] = fmt.Sprintf("m%03d", i)
		must(t, a.Publish(ctx, "r", []byte(want[i])))
	}
	testutil.Eventually(t, "both nodes receive every message", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got["a"]) >= len(want) && len(got["b"]) >= len(want)
	})
	mu.Lock()
	for node, list := range got {
		if !slices.Equal(list, want) {
			t.Errorf("node %s received %d messages, out of order or twice: first %v", node, len(list), list[:min(5, len(list))])
		}
	}
	mu.Unlock()
}

func contractCancelled(t *testing.T, nodes func(string) Store, _ time.Duration) {
	a := nodes("a")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.PutTrack(ctx, "r", room.TrackRecord{ID: "t"}); err == nil {
		t.Error("write with a cancelled context accepted")
	}
	if _, err := a.Counts(ctx, "r"); err == nil {
		t.Error("read with a cancelled context accepted")
	}
}

// totalViewers is the room's viewer count over all nodes.
func totalViewers(s room.RoomState) int {
	n := 0
	for _, v := range s.Viewers {
		n += v
	}
	return n
}
