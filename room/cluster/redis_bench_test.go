package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/room"
)

// The cost of what the join path and the write queue do against a local
// redis-server: one participant count read (the limit check), and one
// participant write.
func BenchmarkRedisStore(b *testing.B) {
	srv := testutil.StartRedis(b)
	store, err := NewRedisStore(redisClient(b, srv), "bench:", RedisOptions{NodeID: "a", TTL: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	for i := range 100 {
		if err := store.PutParticipant(ctx, "r", room.ParticipantRecord{ID: fmt.Sprintf("p%d", i), Node: "a"}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("Counts", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := store.Counts(ctx, "r"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("PutParticipant", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			if err := store.PutParticipant(ctx, "w", room.ParticipantRecord{ID: fmt.Sprintf("p%d", i%1000), Node: "a"}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
