package cluster

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/room"
)

// The server API's room list (GET /api/v1/rooms?live=true, a page of 50)
// with 10,000 live rooms over three nodes, against a local redis-server:
// what a node does for the call (the index of every node, the page's rooms
// in one pipeline, the registry for regions), without HTTP. It reports the
// median and p99 of the calls.
func BenchmarkListRooms_10kRooms(b *testing.B) {
	srv := testutil.StartRedis(b)
	prefix := "bench:"
	open := func(id string) *RedisStore {
		s, err := NewRedisStore(redisClient(b, srv), prefix, RedisOptions{NodeID: id, TTL: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		return s
	}
	ctx := context.Background()
	const rooms = 10_000
	entries := map[string][]room.RoomEntry{}
	for _, id := range []string{"a", "b", "c"} {
		s := open(id)
		if err := s.PutNode(ctx, room.NodeInfo{ID: id, Region: "region-" + id}); err != nil {
			b.Fatal(err)
		}
	}
	stores := map[string]*RedisStore{"a": open("a"), "b": open("b"), "c": open("c")}
	for i := range rooms {
		node := []string{"a", "b", "c"}[i%3]
		name := fmt.Sprintf("room-%05d", i)
		viewers := (i * 7919) % 5000
		entries[node] = append(entries[node], room.RoomEntry{Name: name, Viewers: viewers, Participants: viewers + 1, Tracks: 2, StartedAt: time.Now()})
		part := NodeRoom{
			Participants: []room.ParticipantRecord{{ID: "p" + name, Identity: "host-" + name, Publisher: true, Node: node}},
			Tracks: []room.TrackRecord{{ID: "v" + name, ParticipantID: "p" + name, Kind: "video", Codec: "video/VP8", Node: node},
				{ID: "a" + name, ParticipantID: "p" + name, Kind: "audio", Codec: "audio/opus", Node: node}},
			Viewers: viewers,
		}
		if err := stores[node].SyncRoom(ctx, name, part); err != nil {
			b.Fatal(err)
		}
	}
	for node, list := range entries {
		if err := stores[node].PutIndex(ctx, list); err != nil {
			b.Fatal(err)
		}
	}
	c := New(open("api"), Options{NodeID: "api", Heartbeat: time.Hour, StoreTimeout: 2 * time.Second})
	m := room.NewManager(nil, room.Options{NodeID: "api", Cluster: c})
	defer m.Close()

	var took []time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		list, next, err := m.ListRooms(ctx, room.ListOptions{Live: true, Limit: 50})
		took = append(took, time.Since(start))
		if err != nil || len(list) != 50 || next == "" {
			b.Fatalf("%d rooms, next %q, %v", len(list), next, err)
		}
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
}
