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
	z, r, onB := liveOnAnotherNode(t, 800*time.Millisecond)

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

// A node declared lost that registers again (it was paused or cut off,
// not dead) is believed again at once: the rooms re-read the store, its
// track is published again and relayed, and the grace period that was
// running no longer ends it.
func TestCluster_LostNodeThatComesBackIsRestored(t *testing.T) {
	grace := 1500 * time.Millisecond
	z, r, onB := liveOnAnotherNode(t, grace)
	published := func() int {
		return onB.count(func(ev room.Event) bool { e, ok := ev.(room.TrackPublished); return ok && e.Track.ID == "t_far" })
	}
	once := published()

	z.die()
	testutil.Eventually(t, "b's watcher is told origin_lost", func() bool {
		return onB.has(func(ev room.Event) bool { e, ok := ev.(room.OriginLost); return ok && e.Node == "z" })
	})
	lostAt := time.Now()
	z.heartbeat() // z resumes: it registers and rewrites its part of the room
	testutil.Eventually(t, "z's track is published again on b", func() bool {
		return published() > once && len(r.RemoteTracks()) == 1
	})
	if d := time.Since(lostAt); d >= grace {
		t.Fatalf("restored %v after the loss, not before the grace (%v) ended", d, grace)
	}
	time.Sleep(grace + 300*time.Millisecond)
	if onB.has(func(ev room.Event) bool { e, ok := ev.(room.TrackUnpublished); return ok && e.TrackID == "t_far" }) {
		t.Fatal("the restored track was unpublished when the grace of its loss ended")
	}
	if len(r.RemoteTracks()) != 1 {
		t.Fatalf("b lists %v after the grace, want z's track", r.RemoteTracks())
	}
}

// liveOnAnotherNode starts node b (republish grace grace) on a fresh Redis
// with a watcher in room "on", and node z, played by the test, live there
// with one track that b knows; it returns z, b's room and its watcher.
func liveOnAnotherNode(t *testing.T, grace time.Duration) (*fakeNode, *room.Room, *recorder) {
	t.Helper()
	srv := testutil.StartRedis(t)
	prefix := clusterPrefix()
	b, _ := newClusterNode(t, srv, prefix, "b", room.Options{Room: config.RoomConfig{EmptyTimeout: time.Hour, RepublishGrace: grace}})
	zs, err := NewRedisStore(redisClient(t, srv), prefix, RedisOptions{NodeID: "z", TTL: clusterTTL})
	if err != nil {
		t.Fatal(err)
	}
	z := newFakeNode(t, zs)
	z.heartbeat()
	onB := &recorder{}
	if _, err := b.Join("on", room.ParticipantSpec{Identity: "watcher"}, onB); err != nil {
		t.Fatal(err)
	}
	waitLinked(t, b, "on")
	z.goLive()
	r := b.Room("on")
	testutil.Eventually(t, "b knows z's track", func() bool { return len(r.RemoteTracks()) == 1 })
	return z, r, onB
}
