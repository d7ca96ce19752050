package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/room"
)

// What a node of a cluster records of its rooms: both participants while
// they are there, and nothing of the room once it is empty and removed.
// (The same joins and leaves on a node alone, which records nothing, are
// room.TestJoinLeave_EventsAndEmptyRoomRemoval.)
func TestCluster_RecordsParticipantsAndForgetsEmptyRoom(t *testing.T) {
	store := NewMemoryStore().Node("n1", 0)
	m := newClusterNodeOn(t, store, "n1", room.Options{})
	var a, b recorder
	pa, err := m.Join("r", room.ParticipantSpec{Identity: "alice", Publish: true}, &a)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := m.Join("r", room.ParticipantSpec{Identity: "bob", Subscribe: true}, &b)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "store holds both participants", func() bool {
		st, err := store.Room(context.Background(), "r")
		return err == nil && len(st.Participants) == 2 && st.Participants[0].Node == "n1"
	})
	pb.Leave()
	pa.Leave()
	testutil.Eventually(t, "empty room removed", func() bool { return m.Room("r") == nil })
	testutil.Eventually(t, "store forgets the room", func() bool {
		_, err := store.Room(context.Background(), "r")
		return errors.Is(err, ErrNotFound)
	})
}

// Store writes are applied in order: a participant who joins and leaves at
// once leaves no record behind.
func TestStoreWrites_KeepTheirOrder(t *testing.T) {
	store := NewMemoryStore().Node("n1", 0)
	m := newClusterNodeOn(t, store, "n1", room.Options{Room: config.RoomConfig{EmptyTimeout: time.Hour}})
	var keep recorder
	if _, err := m.Join("order", room.ParticipantSpec{Identity: "stays"}, &keep); err != nil {
		t.Fatal(err)
	}
	for range 300 {
		var r recorder
		p, err := m.Join("order", room.ParticipantSpec{Identity: "flash"}, &r)
		if err != nil {
			t.Fatal(err)
		}
		p.Leave()
	}
	m.cluster.Close() // waits for the queued writes
	st, err := store.Room(context.Background(), "order")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Participants) != 1 || st.Participants[0].Identity != "stays" {
		t.Fatalf("store holds %d participants after 300 join/leave pairs: %+v", len(st.Participants), st.Participants[:min(3, len(st.Participants))])
	}
}

func TestMemoryStore(t *testing.T) {
	s := NewMemoryStore()
	ctx := context.Background()
	if _, err := s.Room(ctx, "x"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	_ = s.PutParticipant(ctx, "x", room.ParticipantRecord{ID: "p2"})
	_ = s.PutParticipant(ctx, "x", room.ParticipantRecord{ID: "p1"})
	_ = s.PutTrack(ctx, "x", room.TrackRecord{ID: "t1", ParticipantID: "p1"})
	st, err := s.Room(ctx, "x")
	if err != nil || len(st.Participants) != 2 || st.Participants[0].ID != "p1" || len(st.Tracks) != 1 {
		t.Fatalf("%+v %v", st, err)
	}
	_ = s.DeleteTrack(ctx, "x", "t1")
	_ = s.DeleteParticipant(ctx, "x", "p1")
	st, _ = s.Room(ctx, "x")
	if len(st.Tracks) != 0 || len(st.Participants) != 1 {
		t.Fatalf("%+v", st)
	}
	rooms, _ := s.Rooms(ctx)
	if len(rooms) != 1 || rooms[0] != "x" {
		t.Fatal(rooms)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.PutTrack(cctx, "x", room.TrackRecord{}); err == nil {
		t.Fatal("cancelled context accepted")
	}
	_ = s.DeleteRoom(ctx, "x")
	if rooms, _ := s.Rooms(ctx); len(rooms) != 0 {
		t.Fatal(rooms)
	}
}
