package cluster

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/room"
)

// The index of rooms on a real Redis: each node's entries replace its
// previous ones whole, a listing reads the nodes it is given, and a node's
// entries end with its lease.
func TestRedisIndex_EachNodeReplacesItsEntriesUnderItsLease(t *testing.T) {
	srv := testutil.StartRedis(t)
	node := redisNodes(t, srv, 600*time.Millisecond)
	a, b := node("a").(*RedisStore), node("b").(*RedisStore)
	ctx := context.Background()
	started := time.UnixMilli(1_700_000_000_123).UTC()
	if err := a.PutIndex(ctx, []room.RoomEntry{{Name: "r1", Viewers: 5, Participants: 6, Tracks: 2, StartedAt: started}, {Name: "r2", Viewers: 1, Participants: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := b.PutIndex(ctx, []room.RoomEntry{{Name: "r1", Viewers: 7, Participants: 7}}); err != nil {
		t.Fatal(err)
	}
	// a's second write drops r2: the index is what a serves now.
	if err := a.PutIndex(ctx, []room.RoomEntry{{Name: "r1", Viewers: 4, Participants: 5, Tracks: 2, StartedAt: started}}); err != nil {
		t.Fatal(err)
	}
	got, err := a.Index(ctx, []string{"a", "b", "gone"})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(got, func(i, j int) bool { return got[i].Node < got[j].Node })
	want := []room.RoomEntry{
		{Name: "r1", Node: "a", Viewers: 4, Participants: 5, Tracks: 2, StartedAt: started},
		{Name: "r1", Node: "b", Viewers: 7, Participants: 7},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("index %+v, want %+v", got, want)
	}
	one, err := b.RoomEntries(ctx, "r1", []string{"b", "a", "gone"})
	if err != nil || len(one) != 2 || one[0].Node != "b" || one[0].Viewers != 7 || one[1].StartedAt != started {
		t.Fatalf("r1's entries: %+v %v", one, err)
	}
	testutil.Eventually(t, "the entries to end with their lease", func() bool {
		got, err := a.Index(ctx, []string{"a", "b"})
		return err == nil && len(got) == 0
	})
}

// A node's index entry is outside input (any client of Redis may write
// it): malformed ones are skipped, never trusted.
func FuzzParseIndexEntry(f *testing.F) {
	for _, s := range []string{"1 2 3 1700000000000", "0 0 0 0", "-1 2 3 4", "1 2 3", "x y z w", "9999999999999999999 1 1 1", ""} {
		f.Add("room", s)
	}
	f.Fuzz(func(t *testing.T, name, v string) {
		e, ok := parseIndexEntry(name, "n", v)
		if ok && (e.Viewers < 0 || e.Participants < 0 || e.Tracks < 0 || e.Name != name) {
			t.Fatalf("accepted %q as %+v", v, e)
		}
	})
}

// A page's rooms read at once: each as the store holds it, a room no node
// holds as an empty state, in the order asked.
func TestRedisRoomStates_ReadsAPageAtOnce(t *testing.T) {
	srv := testutil.StartRedis(t)
	node := redisNodes(t, srv, time.Minute)
	a, b := node("a").(*RedisStore), node("b").(*RedisStore)
	ctx := context.Background()
	if err := a.SyncRoom(ctx, "one", NodeRoom{Participants: []room.ParticipantRecord{{ID: "p1", Identity: "host", Publisher: true, Node: "a"}},
		Tracks: []room.TrackRecord{{ID: "t1", ParticipantID: "p1", Kind: "video", Node: "a"}}, Viewers: 3}); err != nil {
		t.Fatal(err)
	}
	if err := b.SyncRoom(ctx, "one", NodeRoom{Viewers: 4}); err != nil {
		t.Fatal(err)
	}
	if err := b.SyncRoom(ctx, "two", NodeRoom{Participants: []room.ParticipantRecord{{ID: "p2", Node: "b"}}, Viewers: 1}); err != nil {
		t.Fatal(err)
	}
	got, err := b.RoomStates(ctx, []string{"two", "gone", "one"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Name != "two" || got[0].Viewers["b"] != 1 || len(got[1].Viewers) != 0 || got[1].Name != "gone" ||
		got[2].Viewers["a"] != 3 || got[2].Viewers["b"] != 4 || len(got[2].Tracks) != 1 || got[2].Participants[0].Identity != "host" {
		t.Fatalf("states %+v", got)
	}
}
