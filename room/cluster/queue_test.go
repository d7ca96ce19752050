package cluster

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/room"
	"github.com/halobuzz/live/sfu"
)

// gatedStore is a store whose participant writes wait until the gate
// opens: a Redis that has stalled.
type gatedStore struct {
	*MemoryStore
	gate chan struct{}
}

func (g gatedStore) PutParticipant(ctx context.Context, name string, p room.ParticipantRecord) error {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.MemoryStore.PutParticipant(ctx, name, p)
}

// Writes that do not fit the queue while the store stalls are counted, and
// the state is whole again once it answers: nothing is silently lost.
func TestStoreQueue_FullQueueIsCountedAndRepaired(t *testing.T) {
	e, err := sfu.NewEngine(testutil.SFUConfig(true), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	shared := NewMemoryStore()
	store := gatedStore{MemoryStore: shared.Node("a", 10*time.Second), gate: make(chan struct{})}
	m := room.NewManager(e, room.Options{NodeID: "a", Room: config.RoomConfig{EmptyTimeout: time.Hour},
		Cluster: New(store, Options{NodeID: "a", Heartbeat: 200 * time.Millisecond, StoreTimeout: time.Hour})})
	defer m.Close()
	const n = storeQueue + 500
	var rec recorder
	for range n {
		if _, err := m.Join("big", room.ParticipantSpec{Identity: "v", Hidden: true}, &rec); err != nil {
			t.Fatal(err)
		}
	}
	if s := m.StoreStats(); s.QueueDropped == 0 {
		t.Fatalf("%d writes behind a stalled store, none counted as dropped: %+v", n, s)
	}
	close(store.gate) // the store answers again
	observer := shared.Node("observer", 0)
	testutil.Eventually(t, "the store holds every participant again", func() bool {
		st, err := observer.Room(context.Background(), "big")
		return err == nil && len(st.Participants) == n
	})
	if s := m.StoreStats(); s.Resyncs == 0 {
		t.Fatalf("state repaired without a resync? %+v", s)
	}
}

// failingRooms is a store whose first room reads fail: a Redis that
// answered the subscription and then timed out.
type failingRooms struct {
	*MemoryStore
	fails atomic.Int32
}

func (f *failingRooms) Room(ctx context.Context, name string) (room.RoomState, error) {
	if f.fails.Add(-1) >= 0 {
		return room.RoomState{}, errors.New("i/o timeout")
	}
	return f.MemoryStore.Room(ctx, name)
}

// A room whose first read of the other nodes failed is read again at the
// next heartbeat: a broadcaster already live on another node shows up.
func TestLinkRoom_FailedFirstReadIsRetried(t *testing.T) {
	shared := NewMemoryStore()
	e, err := sfu.NewEngine(testutil.SFUConfig(true), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	// Node z is live with a broadcaster in room "late".
	z := shared.Node("z", 10*time.Second)
	ctx := context.Background()
	must(t, z.PutNode(ctx, room.NodeInfo{Region: "far"}))
	must(t, z.SyncRoom(ctx, "late", NodeRoom{
		Participants: []room.ParticipantRecord{{ID: "p_far", Identity: "far", Publisher: true, Node: "z"}},
		Tracks:       []room.TrackRecord{{ID: "t_far", ParticipantID: "p_far", Kind: "video", Node: "z"}},
	}))
	flaky := &failingRooms{MemoryStore: shared.Node("b", 10*time.Second)}
	flaky.fails.Store(2)
	b := room.NewManager(e, room.Options{NodeID: "b", Room: config.RoomConfig{EmptyTimeout: time.Hour},
		Cluster: New(flaky, Options{NodeID: "b", Heartbeat: 100 * time.Millisecond, StoreTimeout: config.Default().Redis.Timeout})})
	defer b.Close()
	var rec recorder
	p, err := b.Join("late", room.ParticipantSpec{Identity: "watcher"}, &rec)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Leave()
	testutil.Eventually(t, "b learns of z's broadcaster despite the failed reads", func() bool {
		ps, ts := b.Room("late").Snapshot()
		return len(ps) == 1 && ps[0].ID == "p_far" && len(ts) == 1
	})
}
