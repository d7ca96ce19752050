package room

import (
	"context"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
)

// quietCluster stands for the other nodes in a room's unit tests: the test
// tells the room what happens there through the room's Remote* methods, as
// package cluster does; what the room tells the cluster goes nowhere.
type quietCluster struct{}

func (quietCluster) Start(*Manager)                                  {}
func (quietCluster) Close()                                          {}
func (quietCluster) Ready() bool                                     { return true }
func (quietCluster) Stats() ClusterStats                             { return ClusterStats{Nodes: 1, Up: true} }
func (quietCluster) RoomCreated(*Room)                               {}
func (quietCluster) RoomRemoved(*Room)                               {}
func (quietCluster) Members(string, bool) (int, error)               { return 0, nil }
func (quietCluster) CountsChanged(*Room)                             {}
func (quietCluster) ParticipantJoined(string, ParticipantRecord)     {}
func (quietCluster) ParticipantLeft(string, string)                  {}
func (quietCluster) TrackStarted(string, TrackRecord)                {}
func (quietCluster) TrackEnded(string, string)                       {}
func (quietCluster) Share(*Room, ...Event)                           {}
func (quietCluster) Nodes(context.Context) ([]NodeInfo, error)       { return nil, nil }
func (quietCluster) Node(context.Context, string) (*NodeInfo, error) { return nil, ErrRelayUnavailable }
func (quietCluster) Announce()                                       {}
func (quietCluster) Gone()                                           {}

// Which local publish takes over a track of another node: one with the
// same identity, kind, source and name, whether its broadcaster is still
// listed on its node (a node killed a moment ago is, until its lease ends),
// left it, or its origin was lost (during the grace period). A lost track that
// nobody takes is unpublished when the grace period ends. (How the cluster
// finds a node dead is TestCluster_DeadOriginsTracksAreKeptForTheGrace, in
// room/cluster.)
func TestCluster_TrackTakeOver(t *testing.T) {
	b := newTestManager(t, Options{Cluster: quietCluster{}, Room: config.RoomConfig{EmptyTimeout: time.Hour, RepublishGrace: 800 * time.Millisecond}})
	var onB recorder
	if _, err := b.Join("on", ParticipantSpec{Identity: "watcher"}, &onB); err != nil {
		t.Fatal(err)
	}
	r := b.Room("on")
	r.RemoteRead()
	goLive := func() string {
		r.RemoteJoined(ParticipantRecord{ID: "p_far", Identity: "far", Name: "Far", Publisher: true, Node: "z"})
		r.RemotePublished(TrackRecord{ID: "t_far", ParticipantID: "p_far", Kind: "video", Source: "camera", Node: "z"})
		return "p_far"
	}
	far := goLive()
	testutil.Eventually(t, "b knows z's track", func() bool { return len(r.RemoteTracks()) == 1 })
	key := trackKey("far", "video", "camera", "")
	if id := r.claimRemote(trackKey("someone-else", "video", "camera", "")); id != "" {
		t.Fatalf("another identity took over %q", id)
	}
	if id := r.claimRemote(key); id != "t_far" {
		t.Fatalf("while its old node still lists its broadcaster, the take-over gave %q, want t_far", id)
	}

	// z's broadcaster leaves z (moving to b) while z still lists the track.
	goLive()
	testutil.Eventually(t, "b knows z's track again", func() bool { return len(r.RemoteTracks()) == 1 })
	r.RemoteLeft(far)
	testutil.Eventually(t, "b's watcher sees the broadcaster leave z", func() bool {
		return onB.has(func(ev Event) bool { e, ok := ev.(ParticipantLeft); return ok && e.ParticipantID == far })
	})
	if id := r.claimRemote(key); id != "t_far" {
		t.Fatalf("after its broadcaster left z, the take-over gave %q, want t_far", id)
	}

	// z goes live again and dies: its track is lost, kept, and can be
	// taken over until the grace period ends.
	goLive()
	testutil.Eventually(t, "b knows z's track again", func() bool { return len(r.RemoteTracks()) == 1 })
	r.RemoteNodeLost("z")
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
	goLive()
	testutil.Eventually(t, "b knows z's track again", func() bool { return len(r.RemoteTracks()) == 1 })
	r.RemoteNodeLost("z")
	testutil.Eventually(t, "the track is lost again", func() bool { return len(r.RemoteTracks()) == 0 && r.isRemoteTrack("t_far") })
	if id := r.claimRemote(key); id != "t_far" {
		t.Fatalf("a lost track taken over gave %q, want t_far", id)
	}
}
