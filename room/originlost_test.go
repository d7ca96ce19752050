package room

import (
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
)

// Which local publish takes over a track of another node: none while its
// broadcaster is on a healthy node, the track once that broadcaster left
// it, and a lost origin's track during the grace period. A lost track that
// nobody takes is unpublished when the grace period ends.
func TestCluster_TrackTakeOver(t *testing.T) {
	srv := testutil.StartRedis(t)
	prefix := clusterPrefix()
	b, _ := newClusterNode(t, srv, prefix, "b", Options{Room: config.RoomConfig{EmptyTimeout: time.Hour, RepublishGrace: 800 * time.Millisecond}})
	zs, err := NewRedisStore(redisClient(t, srv), prefix, RedisOptions{NodeID: "z", TTL: clusterTTL})
	if err != nil {
		t.Fatal(err)
	}
	z := newFakeNode(t, zs)
	z.heartbeat()
	var onB recorder
	if _, err := b.Join("on", ParticipantSpec{Identity: "watcher"}, &onB); err != nil {
		t.Fatal(err)
	}
	waitLinked(t, b, "on")
	far := z.goLive()
	r := b.Room("on")
	testutil.Eventually(t, "b knows z's track", func() bool { return len(r.RemoteTracks()) == 1 })
	key := trackKey("far", "video", "camera", "")
	if id := r.claimRemote(trackKey("someone-else", "video", "camera", "")); id != "" {
		t.Fatalf("another identity took over %q", id)
	}
	if id := r.claimRemote(key); id != "" {
		t.Fatalf("took over %q while its broadcaster still publishes it on a healthy node", id)
	}

	// z's broadcaster leaves z (moving to b) while z still lists the track.
	z.send(wireEvent{Type: evLeft, ID: far})
	testutil.Eventually(t, "b's watcher sees the broadcaster leave z", func() bool {
		return onB.has(func(ev Event) bool { e, ok := ev.(ParticipantLeft); return ok && e.ParticipantID == far })
	})
	if id := r.claimRemote(key); id != "t_far" {
		t.Fatalf("after its broadcaster left z, the take-over gave %q, want t_far", id)
	}

	// z goes live again and dies: its track is lost, kept, and can be
	// taken over until the grace period ends.
	z.goLive()
	testutil.Eventually(t, "b knows z's track again", func() bool { return len(r.RemoteTracks()) == 1 })
	z.die()
	testutil.Eventually(t, "b's watcher is told origin_lost", func() bool {
		return onB.has(func(ev Event) bool {
			e, ok := ev.(OriginLost)
			return ok && e.Node == "z" && len(e.TrackIDs) == 1 && e.TrackIDs[0] == "t_far"
		})
	})
	if onB.has(func(ev Event) bool { _, ok := ev.(TrackUnpublished); return ok }) {
		t.Fatal("the lost track was unpublished at once, not kept for the grace period")
	}
	if !r.isRemoteTrack("t_far") || len(r.RemoteTracks()) != 0 {
		t.Fatalf("a lost track is kept (isRemoteTrack %v) but not relayed (remote %v)", r.isRemoteTrack("t_far"), r.RemoteTracks())
	}
	testutil.Eventually(t, "the lost track is unpublished when the grace period ends", func() bool {
		return onB.has(func(ev Event) bool { e, ok := ev.(TrackUnpublished); return ok && e.TrackID == "t_far" })
	})
	if r.isRemoteTrack("t_far") {
		t.Fatal("the expired track is still kept")
	}

	// Once more, and this time the broadcaster comes back in time.
	z.heartbeat()
	z.goLive()
	testutil.Eventually(t, "b knows z's track again", func() bool { return len(r.RemoteTracks()) == 1 })
	z.die()
	testutil.Eventually(t, "the track is lost again", func() bool { return len(r.RemoteTracks()) == 0 && r.isRemoteTrack("t_far") })
	if id := r.claimRemote(key); id != "t_far" {
		t.Fatalf("a lost track taken over gave %q, want t_far", id)
	}
}
