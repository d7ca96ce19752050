package cluster

import (
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/room"
)

// A node whose registry entry expires (it died) is lost to the rooms of
// the other nodes: their clients are told origin_lost, its track is kept
// for the republish grace, not relayed meanwhile, and unpublished when the
// grace ends. (Which local publish takes such a track over is
// room.TestCluster_TrackTakeOver.)
func TestCluster_DeadOriginsTracksAreKeptForTheGrace(t *testing.T) {
	srv := testutil.StartRedis(t)
	prefix := clusterPrefix()
	b, _ := newClusterNode(t, srv, prefix, "b", room.Options{Room: config.RoomConfig{EmptyTimeout: time.Hour, RepublishGrace: 800 * time.Millisecond}})
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
	z.goLive()
	r := b.Room("on")
	testutil.Eventually(t, "b knows z's track", func() bool { return len(r.RemoteTracks()) == 1 })

	z.die()
	testutil.Eventually(t, "b's watcher is told origin_lost", func() bool {
		return onB.has(func(ev room.Event) bool {
			e, ok := ev.(room.OriginLost)
			return ok && e.Node == "z" && len(e.TrackIDs) == 1 && e.TrackIDs[0] == "t_far"
		})
	})
	if onB.has(func(ev room.Event) bool { _, ok := ev.(room.TrackUnpublished); return ok }) {
		t.Fatal("the lost track was unpublished at once, not kept for the grace period")
	}
	if len(r.RemoteTracks()) != 0 {
		t.Fatalf("a lost track is relayed: %v", r.RemoteTracks())
	}
	testutil.Eventually(t, "the lost track is unpublished when the grace period ends", func() bool {
		return onB.has(func(ev room.Event) bool { e, ok := ev.(room.TrackUnpublished); return ok && e.TrackID == "t_far" })
	})
}
